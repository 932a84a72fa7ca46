// Package codegen holds only CSharpPackageInfo: the C# language options of a
// Pulumi schema, as pulumi-docker-build sets them. It does no code generation.
package codegen

// CSharpPackageInfo is the "csharp" entry of a schema's language map.
type CSharpPackageInfo struct {
	RespectSchemaVersion bool              `json:"respectSchemaVersion,omitempty"`
	PackageReferences    map[string]string `json:"packageReferences,omitempty"`
}
