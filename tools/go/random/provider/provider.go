// Package random maps the Terraform random provider onto the Pulumi package
// "random" with the tokens of the published SDKs: random_password becomes
// random:index/randomPassword:RandomPassword, and so on for every resource.
package random

import (
	"context"
	"errors"

	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"github.com/terraform-providers/terraform-provider-random/shim"
)

// Version is the package version, set at build time (-X) from the `random`
// line of tools/go-tools.txt. The engine loads the plugin whose version the
// Python SDK (pulumi-random) asks for.
var Version = "0.0.0-dev"

// Provider returns the bridge configuration. metadata is the bridge metadata
// written by pulumi-tfgen-random (nil when generating it).
func Provider(metadata []byte) tfbridge.ProviderInfo {
	p := tfbridge.ProviderInfo{
		P:            pf.ShimProvider(shim.New()),
		Name:         "random",
		Description:  "A Pulumi package to safely use randomness in Pulumi programs.",
		Keywords:     []string{"pulumi", "random"},
		License:      "Apache-2.0",
		Homepage:     "https://pulumi.io",
		Repository:   "https://github.com/pulumi/pulumi-random",
		Version:      Version,
		MetadataInfo: tfbridge.NewProviderMetadata(metadata),
		Resources: map[string]*tfbridge.ResourceInfo{
			// random_bytes has no id attribute; the published provider uses
			// its base64 value.
			"random_bytes": {ComputeID: bytesID},
			// States written by old SDKs may lack the schema version; treat
			// them as version 1 as the published provider does.
			"random_string": {PreStateUpgradeHook: stringStateVersion},
		},
		Python:                      &tfbridge.PythonInfo{RespectSchemaVersion: true},
		EnableAccurateBridgePreview: true,
		EnableRawStateDelta:         true,
	}
	// random_<name> -> random:index/random<Name>:Random<Name>
	p.MustComputeTokens(tokens.SingleModule("random_", "index",
		func(module, name string) (string, error) {
			return tokens.MakeStandard("random")(module, "Random"+name)
		}))
	p.MustApplyAutoAliases()
	return p
}

func bytesID(_ context.Context, state resource.PropertyMap) (resource.ID, error) {
	v, ok := state["base64"]
	if !ok {
		return "", errors.New("random_bytes: state has no base64 property")
	}
	if v.IsSecret() {
		v = v.SecretValue().Element
	}
	if !v.IsString() {
		return "", errors.New("random_bytes: base64 property is not a string")
	}
	return resource.ID(v.StringValue()), nil
}

func stringStateVersion(args tfbridge.PreStateUpgradeHookArgs) (int64, resource.PropertyMap, error) {
	if args.PriorStateSchemaVersion == 0 {
		return 1, args.PriorState, nil
	}
	return args.PriorStateSchemaVersion, args.PriorState, nil
}
