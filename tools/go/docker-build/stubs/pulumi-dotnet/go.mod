// Stand-in for github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3, which
// the proxy does not serve. pulumi-docker-build imports it only for the type of
// the "csharp" entry of its schema's language map; see ../../go.mod.
module github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3

go 1.22
