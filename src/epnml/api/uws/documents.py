"""UWS 1.1 documents: a job, the job list, its parameters and results (XML), its error
and summary (text, JSON)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from epnml.api.uws.store import Job

UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"


def iso(dt: datetime | None) -> str:
    if dt is None:
        return ""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _el(name: str, value: str | None) -> str:
    if value is None or value == "":
        return f'<uws:{name} xsi:nil="true"/>'
    return f"<uws:{name}>{escape(value)}</uws:{name}>"


_HEAD = (f'xmlns:uws="{UWS_NS}" xmlns:xlink="http://www.w3.org/1999/xlink" '
         'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="1.1"')


def results_fragment(job: Job, base: str) -> str:
    if job.phase != "COMPLETED":
        return "<uws:results/>"
    href = f"{base}/jobs/{job.job_id}/results/rows"
    summary = f"{base}/jobs/{job.job_id}/results/summary"
    return ("<uws:results>"
            f'<uws:result id="rows" xlink:type="simple" xlink:href={quoteattr(href)} '
            'mime-type="application/x-votable+xml"/>'
            f'<uws:result id="summary" xlink:type="simple" xlink:href={quoteattr(summary)} '
            'mime-type="application/json"/></uws:results>')


def job_xml(job: Job, base: str) -> str:
    params = "".join(f'<uws:parameter id={quoteattr(k)}>{escape(v)}</uws:parameter>'
                     for k, v in job.parameters())
    error = ""
    if job.phase in ("ERROR", "ABORTED") and job.error:
        error = ('<uws:errorSummary type="fatal" hasDetail="false">'
                 f"<uws:message>{escape(job.error)}</uws:message></uws:errorSummary>")
    return (
        f'<?xml version="1.0" encoding="utf-8"?><uws:job {_HEAD}>'
        f"{_el('jobId', job.job_id)}{_el('ownerId', job.owner)}{_el('phase', job.phase)}"
        f"{_el('quote', None)}{_el('creationTime', iso(job.creation_time))}"
        f"{_el('startTime', iso(job.start_time))}{_el('endTime', iso(job.end_time))}"
        f"{_el('executionDuration', str(job.execution_duration))}"
        f"{_el('destruction', iso(job.destruction_time))}"
        f"<uws:parameters>{params}</uws:parameters>{results_fragment(job, base)}{error}"
        f"<uws:jobInfo><attempts>{job.attempts}</attempts>"
        f"<nRows>{'' if job.n_rows is None else job.n_rows}</nRows></uws:jobInfo>"
        "</uws:job>"
    )


def jobs_xml(jobs: list[Job], base: str) -> str:
    refs = "".join(
        f'<uws:jobref id={quoteattr(j.job_id)} xlink:type="simple" '
        f"xlink:href={quoteattr(f'{base}/jobs/{j.job_id}')}>"
        f"{_el('phase', j.phase)}{_el('ownerId', j.owner)}"
        f"{_el('creationTime', iso(j.creation_time))}</uws:jobref>"
        for j in jobs)
    return f'<?xml version="1.0" encoding="utf-8"?><uws:jobs {_HEAD}>{refs}</uws:jobs>'


def parameters_xml(job: Job) -> str:
    params = "".join(f'<uws:parameter id={quoteattr(k)}>{escape(v)}</uws:parameter>'
                     for k, v in job.parameters())
    return (f'<?xml version="1.0" encoding="utf-8"?><uws:parameters {_HEAD}>{params}'
            "</uws:parameters>")


def results_xml(job: Job, base: str) -> str:
    inner = results_fragment(job, base)
    inner = inner.replace("<uws:results>", "").replace("</uws:results>", "").replace(
        "<uws:results/>", "")
    return f'<?xml version="1.0" encoding="utf-8"?><uws:results {_HEAD}>{inner}</uws:results>'


def error_text(job: Job) -> str:
    return job.error or ""


def result_summary(job: Job) -> str:
    return json.dumps(job.result or {}, default=str)
