// Stand-in for github.com/pulumi/pulumi-java, which the proxy does not serve.
// pulumi-docker-build imports it only for the type of the "java" entry of its
// schema's language map; see ../../go.mod.
module github.com/pulumi/pulumi-java

go 1.22
