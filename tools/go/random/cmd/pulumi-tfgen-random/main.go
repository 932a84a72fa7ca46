// pulumi-tfgen-random writes the Pulumi schema and the bridge metadata of the
// random package (`pulumi-tfgen-random schema --out DIR`); tools/build-go-tools.sh
// runs it before building pulumi-resource-random, which embeds both files.
package main

import (
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfgen"

	random "roadbike.example/tools/random/provider"
)

func main() { tfgen.Main("random", random.Provider(nil)) }
