"""Engine type tokens of the resources the pack inspects."""

NAMESPACE = "kubernetes:core/v1:Namespace"
REPOSITORY = "github:index/repository:Repository"
REPOSITORY_RULESET = "github:index/repositoryRuleset:RepositoryRuleset"
BRANCH_PROTECTION = "github:index/branchProtection:BranchProtection"
REPOSITORY_FILE = "github:index/repositoryFile:RepositoryFile"
REPOSITORY_ENVIRONMENT = "github:index/repositoryEnvironment:RepositoryEnvironment"
REPOSITORY_WEBHOOK = "github:index/repositoryWebhook:RepositoryWebhook"
OCI_REGISTRY = "roadbike:registry:OciRegistry"
MULTI_ARCH_IMAGE = "roadbike:images:MultiArchImage"
DOCKER_BUILD_IMAGE = "docker-build:index:Image"
KUBERNETES_SECRET = "kubernetes:core/v1:Secret"
CLUSTER_IMAGE_POLICIES = {
    "kubernetes:policy.sigstore.dev/v1beta1:ClusterImagePolicy",
    "kubernetes:policy.sigstore.dev/v1alpha1:ClusterImagePolicy",
}
WORKLOADS = {
    "kubernetes:core/v1:Pod",
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:apps/v1:ReplicaSet",
    "kubernetes:batch/v1:Job",
    "kubernetes:batch/v1:CronJob",
}
# The inputs each provider always stores as secrets (pulumi.Output.secret + additional_secret_outputs).
SECRET_VALUE_FIELDS: dict[str, tuple[str, ...]] = {
    f"github:index/{module}:{kind}": ("value", "plaintextValue", "encryptedValue", "valueEncrypted")
    for module, kind in (
        ("actionsSecret", "ActionsSecret"),
        ("actionsEnvironmentSecret", "ActionsEnvironmentSecret"),
        ("actionsOrganizationSecret", "ActionsOrganizationSecret"),
    )
}
CHAOS_SCHEDULE = "kubernetes:chaos-mesh.org/v1alpha1:Schedule"
NETWORK_CHAOS = "kubernetes:chaos-mesh.org/v1alpha1:NetworkChaos"
STRESS_CHAOS = "kubernetes:chaos-mesh.org/v1alpha1:StressChaos"
POD_CHAOS = "kubernetes:chaos-mesh.org/v1alpha1:PodChaos"
DELIVERY_CHAIN = "roadbike:chain:DeliveryChain"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
DELIVERY_HEALTH = "roadbike:delivery:DeliveryHealth"
