// Package java holds only PackageInfo: the Java language options of a Pulumi
// schema, as pulumi-docker-build sets them. It does no code generation.
package java

// PackageInfo is the "java" entry of a schema's language map.
type PackageInfo struct {
	BuildFiles                      string            `json:"buildFiles,omitempty"`
	GradleNexusPublishPluginVersion string            `json:"gradleNexusPublishPluginVersion,omitempty"`
	Dependencies                    map[string]string `json:"dependencies,omitempty"`
}
