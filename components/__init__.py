"""roadbike components: pure renderers of the typed stack config and the ComponentResources that wrap them."""
