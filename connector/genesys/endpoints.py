"""The Genesys endpoints the connector calls: their paths and their labels (metrics and errors use the
templated labels, never ids)."""

from __future__ import annotations

QUERY_PATH = "/api/v2/analytics/conversations/details/query"
MULTIGET_PATH = "/api/v2/analytics/conversations/details"
TOKEN_PATH = "/oauth/token"  # noqa: S105 - a URL path, not a password
#: Endpoint labels for metrics and errors (templated names, never ids).
QUERY_ENDPOINT = "details_query"
MULTIGET_ENDPOINT = "details_multiget"
TOKEN_ENDPOINT = "oauth_token"  # noqa: S105 - a metric label
#: Most ids one multi-get request carries.
MAX_IDS_PER_GET = 100
JOBS_PATH = "/api/v2/analytics/conversations/details/jobs"
JOBS_AVAILABILITY_PATH = JOBS_PATH + "/availability"
JOBS_SUBMIT_ENDPOINT = "jobs_submit"
JOB_STATUS_ENDPOINT = "job_status"
JOB_RESULTS_ENDPOINT = "job_results"
JOB_DELETE_ENDPOINT = "job_delete"
JOBS_AVAILABILITY_ENDPOINT = "jobs_availability"
