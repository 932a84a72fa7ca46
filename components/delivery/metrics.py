"""The facts a release pushes to the Pushgateway and the labels that key them: one source for the push
step that writes them and the rules that read them."""

from __future__ import annotations

# The Pushgateway group of one release: /metrics/job/<JOB>/service/<s>/environment/<e>/release/<id>.
# `release` is the workflow run's id and attempt, so no release replaces another's facts.
PUSH_JOB = "roadbike_release"
GROUPING_LABELS = ("service", "environment", "release")

COMMIT_TIME = "roadbike_release_commit_timestamp_seconds"
START_TIME = "roadbike_release_start_timestamp_seconds"
END_TIME = "roadbike_release_end_timestamp_seconds"
SUCCEEDED = "roadbike_release_succeeded"
COVERAGE = "roadbike_release_test_coverage_percent"
BINARY_SIZE = "roadbike_release_binary_size_bytes"
INFO = "roadbike_release_info"
INFO_LABELS = ("version", "commit", "go_version", "outcome")
