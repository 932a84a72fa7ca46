// The Terraform random provider keeps its provider in internal/provider, which
// Go lets only packages under github.com/terraform-providers/terraform-provider-random
// import. This one-function module sits under that path (replaced by ../go.mod
// with this directory) so that our bridge can reach provider.New.
module github.com/terraform-providers/terraform-provider-random/shim

go 1.25.8

require (
	github.com/hashicorp/terraform-plugin-framework v1.19.0
	github.com/terraform-providers/terraform-provider-random v1.3.2-0.20260513075824-f8d869dc98d9
)
