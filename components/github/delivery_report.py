"""The release's own report for delivery health (`roadbike:delivery`): a first job notes when the release
started, the binaries job measures the binaries, the publish job sends the build metadata to Loki, and a
last job that always runs pushes the release's facts to the Pushgateway.

Config values reach the steps only through `env:`; the scripts are constant text. A Pushgateway or Loki
that cannot be reached is a warning in the job summary; one that refuses the credentials or the push
fails the release.
"""

from __future__ import annotations

from typing import Any

from components.config import DeliveryConfig, Service, StackConfig
from components.delivery import metrics
from components.github.steps import (
    METADATA_FILE,
    checkout_step,
    job_definition,
    run_step,
    secret_expression,
    var_expression,
)
from components.naming import release_environment

RELEASE_STARTED, RELEASE_REPORT = "release-started", "release-report"

VAR_PUSHGATEWAY_USERNAME = "PUSHGATEWAY_USERNAME"
SECRET_PUSHGATEWAY_PASSWORD = "PUSHGATEWAY_PASSWORD"

PUSH_STEP_NAME = "Report the release to the Pushgateway"
LOKI_STEP_NAME = "Send the build metadata to Loki"
SIZES_STEP_ID = "sizes"

# curl: bounded connect and total time, a couple of retries for a Pushgateway that is restarting.
CURL = (
    "curl --silent --show-error --connect-timeout 5 --max-time 30 --retry 2 --retry-delay 1 "
    "--retry-connrefused"
)


def started_script() -> str:
    return 'echo "at=$(date +%s)" >> "${GITHUB_OUTPUT}"\n'


def sizes_script(service: Service) -> str:
    """The binaries' sizes in bytes as JSON, e.g. {"go-http-server-linux-amd64": 6291456}."""
    return (
        f"sizes=\"$(cd dist && stat -c '%n %s' -- {service.name}-* | jq -R -s -c "
        '\'split("\\n") | map(select(length > 0) | split(" ") | {(.[0]): (.[1] | tonumber)}) | add\')"\n'
        'echo "sizes=${sizes}" >> "${GITHUB_OUTPUT}"\n'
    )


def _send(what: str, slug: str, method: str, content_type: str, url: str, body: str, auth: bool) -> str:
    """Send `body` to `url`; 2xx is done, unreachable or 5xx a warning, 401/403 and other answers fail."""
    lines = [f'response="${{RUNNER_TEMP}}/{slug}-response.txt"', "status=0"]
    command = (
        f"{CURL} --output \"${{response}}\" --write-out '%{{http_code}}' --request {method} "
        f'--header "Content-Type: {content_type}" --data-binary "@{body}"'
    )
    if auth:
        user, password = VAR_PUSHGATEWAY_USERNAME, SECRET_PUSHGATEWAY_PASSWORD
        lines += [
            "# the credentials go in a header read from stdin: never on a command line or in a file",
            f'if [[ -n "${{{user}}}" ]]; then',
            f"  code=\"$(printf 'Authorization: Basic %s\\n' \"$(printf '%s:%s' \"${{{user}}}\" "
            f'"${{{password}}}" | base64 -w 0)" | {command} --header @- --url "{url}")" || status=$?',
            "else",
            f'  code="$({command} --url "{url}")" || status=$?',
            "fi",
        ]
    else:
        lines.append(f'code="$({command} --url "{url}")" || status=$?')
    lines += [
        # what the server said, one line of plain text (it is printed in the log)
        "said=\"$(head -c 300 \"${response}\" 2>/dev/null | tr -c 'A-Za-z0-9 .,;_=/()-' ' ' || true)\"",
        'case "${code}" in',
        "  2??)",
        f'    echo "{what}: the release is reported (HTTP ${{code}})"',
        f'    echo "- {what}: reported (HTTP ${{code}})" >> "${{GITHUB_STEP_SUMMARY}}"',
        "    ;;",
        "  401|403)",
        f'    echo "::error::{what} refused the credentials (HTTP ${{code}}): ${{said}}"',
        f'    echo "- {what}: **refused the credentials** (HTTP ${{code}})" >> "${{GITHUB_STEP_SUMMARY}}"',
        "    exit 1",
        "    ;;",
        "  000|5??)",
        f'    echo "::warning::{what} is unreachable (curl exit ${{status}}, HTTP ${{code}}): the release '
        'is not reported there"',
        f'    echo "- :warning: {what}: unreachable (curl exit ${{status}}, HTTP ${{code}}), the release is '
        'not reported there" >> "${GITHUB_STEP_SUMMARY}"',
        "    ;;",
        "  *)",
        f'    echo "::error::{what} refused the push (HTTP ${{code}}): ${{said}}"',
        f'    echo "- {what}: **refused the push** (HTTP ${{code}})" >> "${{GITHUB_STEP_SUMMARY}}"',
        "    exit 1",
        "    ;;",
        "esac",
    ]
    return "\n".join(lines) + "\n"


def push_script() -> str:
    """The release's facts in the Prometheus text format, PUT as the group of this release."""
    m = metrics
    info_labels = ",".join(f'{label}="%s"' for label in m.INFO_LABELS)
    return (
        'end_time="$(date +%s)"\n'
        'release="${GITHUB_RUN_ID}-${GITHUB_RUN_ATTEMPT}"\n'
        'if [[ ! "${release}" =~ ^[0-9]+-[0-9]+$ ]]; then\n'
        '  echo "::error::GITHUB_RUN_ID and GITHUB_RUN_ATTEMPT are not numbers"\n'
        "  exit 1\n"
        "fi\n"
        'commit_time="$(git show -s --format=%ct "${GITHUB_SHA}" 2>/dev/null || true)"\n'
        "# the release's outcome: a job failed; else one was cancelled; else every job succeeded\n"
        'case " ${RESULTS} " in\n'
        '  *" failure "*) outcome=failure ;;\n'
        '  *" cancelled "*) outcome=cancelled ;;\n'
        "  *)\n"
        "    outcome=success\n"
        "    for result in ${RESULTS:-none}; do\n"
        '      [[ "${result}" == success ]] || outcome=failure\n'
        "    done\n"
        "    ;;\n"
        "esac\n"
        'succeeded=0\n[[ "${outcome}" != success ]] || succeeded=1\n'
        "# only numbers and plain label values go into the text format, anything else is left out\n"
        'number() { [[ "$1" =~ ^[0-9]{1,19}(\\.[0-9]{1,9})?$ ]]; }\n'
        'label() { if [[ "$1" =~ ^[A-Za-z0-9._+-]{1,128}$ ]]; then printf \'%s\' "$1"; fi; }\n'
        'gauge() { printf \'# TYPE %s gauge\\n%s%s %s\\n\' "$1" "$1" "${3:-}" "$2"; }\n'
        'sizes="$(jq -r \'to_entries[] | "\\(.key) \\(.value)"\' <<< "${BINARY_SIZES:-null}" 2>/dev/null || true)"\n'
        'body="${RUNNER_TEMP}/release-facts.prom"\n'
        "{\n"
        f'  gauge {m.END_TIME} "${{end_time}}"\n'
        f'  if number "${{commit_time}}"; then gauge {m.COMMIT_TIME} "${{commit_time}}"; fi\n'
        f'  if number "${{STARTED_AT}}"; then gauge {m.START_TIME} "${{STARTED_AT}}"; fi\n'
        f'  gauge {m.SUCCEEDED} "${{succeeded}}"\n'
        f'  if number "${{TEST_COVERAGE_PERCENT}}"; then gauge {m.COVERAGE} "${{TEST_COVERAGE_PERCENT}}"; fi\n'
        f'  [[ -z "${{sizes}}" ]] || echo "# TYPE {m.BINARY_SIZE} gauge"\n'
        "  while read -r binary size; do\n"
        '    if [[ -n "$(label "${binary}")" ]] && number "${size}"; then\n'
        f'      echo "{m.BINARY_SIZE}{{binary=\\"${{binary}}\\"}} ${{size}}"\n'
        "    fi\n"
        '  done <<< "${sizes}"\n'
        f"  printf '# TYPE {m.INFO} gauge\\n{m.INFO}{{{info_labels}}} 1\\n' \\\n"
        '    "$(label "${VERSION}")" "$(label "${GITHUB_SHA}")" "$(label "${GO_VERSION}")" "${outcome}"\n'
        '} > "${body}"\n'
        '{\n  echo "## Delivery report"\n  echo\n'
        '  echo "Release ${release} of ${SERVICE} in ${ENVIRONMENT}: ${outcome}"\n} >> "${GITHUB_STEP_SUMMARY}"\n'
        + _send(
            "The Pushgateway",
            "pushgateway",
            "PUT",
            "text/plain; version=0.0.4",
            f"${{PUSHGATEWAY_URL%/}}/metrics/job/{m.PUSH_JOB}/service/${{SERVICE}}"
            "/environment/${ENVIRONMENT}/release/${release}",
            "${body}",
            auth=True,
        )
    )


def loki_script() -> str:
    """The build metadata document as one log line of the stream {job, service, environment}."""
    return (
        'body="${RUNNER_TEMP}/loki-push.json"\n'
        'jq -c -n --arg ts "$(date +%s)000000000" --arg service "${SERVICE}" '
        '--arg environment "${ENVIRONMENT}" \\\n'
        f"  --rawfile line {METADATA_FILE} \\\n"
        f'  \'{{streams: [{{stream: {{job: "{metrics.PUSH_JOB}", service: $service, '
        "environment: $environment},\n"
        '    values: [[$ts, ($line | fromjson | tojson)]]}]}\' > "${body}"\n'
        '{\n  echo "## Delivery report"\n  echo\n} >> "${GITHUB_STEP_SUMMARY}"\n'
        + _send("Loki", "loki", "POST", "application/json", "${LOKI_URL}", "${body}", auth=False)
    )


def _identity_env(config: StackConfig, service: Service) -> dict[str, str]:
    return {"SERVICE": service.name, "ENVIRONMENT": config.environment}


def started_job(tag_job: str) -> dict[str, Any]:
    """Right after the tag is validated (every job of the release needs that first)."""
    return job_definition(
        RELEASE_STARTED,
        [run_step("Note the release's start", started_script(), id_="started")],
        timeout=2,
        cancel_in_progress=False,
        needs=(tag_job,),
        outputs={"at": "${{ steps.started.outputs.at }}"},
    )


def sizes_step(service: Service) -> dict[str, Any]:
    return run_step("Binary sizes", sizes_script(service), id_=SIZES_STEP_ID)


def loki_step(config: StackConfig, service: Service, delivery: DeliveryConfig) -> list[dict[str, Any]]:
    if delivery.loki is None:
        return []
    env = {"LOKI_URL": delivery.loki.url, **_identity_env(config, service)}
    return [run_step(LOKI_STEP_NAME, loki_script(), env=env)]


def push_env(
    config: StackConfig, service: Service, delivery: DeliveryConfig, jobs: dict[str, str]
) -> dict[str, str]:
    """`jobs`: the release-tag, release-test and release-binaries job names."""
    env = {"PUSHGATEWAY_URL": delivery.pushgateway.url, **_identity_env(config, service)}
    if delivery.pushgateway.username is not None:
        env[VAR_PUSHGATEWAY_USERNAME] = var_expression(VAR_PUSHGATEWAY_USERNAME)
        env[SECRET_PUSHGATEWAY_PASSWORD] = secret_expression(SECRET_PUSHGATEWAY_PASSWORD)
    env.update(
        {
            "RESULTS": "${{ join(needs.*.result, ' ') }}",
            "STARTED_AT": f"${{{{ needs.{RELEASE_STARTED}.outputs.at }}}}",
            "VERSION": f"${{{{ needs.{jobs['tag']}.outputs.version }}}}",
            "TEST_COVERAGE_PERCENT": f"${{{{ needs.{jobs['test']}.outputs.coverage }}}}",
            "GO_VERSION": f"${{{{ needs.{jobs['binaries']}.outputs.go-version }}}}",
            "BINARY_SIZES": f"${{{{ needs.{jobs['binaries']}.outputs.sizes }}}}",
        }
    )
    return env


def report_job(
    config: StackConfig,
    service: Service,
    delivery: DeliveryConfig,
    needs: list[str],
    jobs: dict[str, str],
) -> dict[str, Any]:
    """The last job: always runs, in the environment (its Pushgateway credentials), after every job."""
    push = run_step(PUSH_STEP_NAME, push_script(), env=push_env(config, service, delivery, jobs))
    job = job_definition(
        RELEASE_REPORT,
        [checkout_step(), {"name": push.pop("name"), "if": "always()", **push}],
        timeout=5,
        cancel_in_progress=False,
        permissions={"contents": "read"},
        needs=(RELEASE_STARTED, *needs),
        environment=release_environment(config),
    )
    # right after `needs`: the job runs whatever became of the jobs before it
    head = {"name": job.pop("name"), "needs": job.pop("needs"), "if": "always()"}
    return {**head, **job}
