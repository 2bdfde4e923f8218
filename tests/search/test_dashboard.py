"""optuna-dashboard shows a search as it is: over-budget trials infeasible, objectives named.

The study is read through optuna-dashboard's own WSGI app (its HTTP API, what its web page
loads) and judged by the page's own rule: a trial is feasible when every one of its
``constraints`` is <= 0 (``constraints.every(c => c <= 0)`` in its bundle.js).
"""

from __future__ import annotations

import io
import json
from typing import Any
from wsgiref.util import setup_testing_defaults

import optuna_dashboard

from search.runner import SearchResult


def _get(app: Any, path: str) -> Any:
    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    environ["wsgi.input"] = io.BytesIO(b"")
    status: list[str] = []
    body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    assert status[0].startswith("200"), (path, status, body[:200])
    return json.loads(body)


def test_dashboard_marks_over_budget_trials_infeasible(searched: SearchResult) -> None:
    app = optuna_dashboard.wsgi(searched.storage_url)
    studies = _get(app, "/api/studies")["study_summaries"]
    (summary,) = [s for s in studies if s["study_name"] == searched.study_name]
    detail = _get(app, f"/api/studies/{summary['study_id']}")
    assert detail["objective_names"] == ["val_acc"]  # not "Objective 0"
    table = searched.trials.set_index("number")
    infeasible = 0
    for trial in detail["trials"]:
        if trial["state"] != "Complete":
            continue
        constraints = trial["constraints"]
        assert constraints, f"trial {trial['number']} shows no constraints"
        feasible = all(c <= 0 for c in constraints)  # the dashboard's own rule
        assert feasible == bool(table.loc[trial["number"], "feasible"]), trial["number"]
        infeasible += not feasible
        # the constraints' names are beside them, among the user attributes it lists
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        assert list(json.loads(attrs["constraints"])) == ["flops_max"]
    assert infeasible == int((~table["feasible"].astype(bool)).sum()) > 0
