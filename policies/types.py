"""Engine type tokens of the resources the pack inspects."""

NAMESPACE = "kubernetes:core/v1:Namespace"
REPOSITORY = "github:index/repository:Repository"
REPOSITORY_RULESET = "github:index/repositoryRuleset:RepositoryRuleset"
BRANCH_PROTECTION = "github:index/branchProtection:BranchProtection"
