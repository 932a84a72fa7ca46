// Package shim exposes the Terraform random provider (a plugin-framework
// provider) to the bridge.
package shim

import (
	fwprovider "github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/terraform-providers/terraform-provider-random/internal/provider"
)

// New returns the Terraform random provider.
func New() fwprovider.Provider { return provider.New() }
