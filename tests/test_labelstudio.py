"""The review queue through a real Label Studio and back: the tasks import with their pre-annotations, a
person's annotations (made through Label Studio's API, as its UI makes them) export as JSON, and that export
reads back as the answers. Integration tier: it starts `label-studio` (on SQLite, in a temporary folder),
which is not a dependency of distill; the test skips, saying so, when it is not installed."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from test_review import LABELS, candidates

from distill.review.answers import read_answers
from distill.review.labelstudio import labeling_config, write_tasks
from distill.review.queue import compose

pytestmark = pytest.mark.integration
TOKEN = "0123456789abcdef0123456789abcdef01234567"


def label_studio() -> str:
    """The label-studio command: $LABEL_STUDIO_BIN, else the one on PATH."""
    found = os.environ.get("LABEL_STUDIO_BIN") or shutil.which("label-studio")
    if not found:
        pytest.skip("label-studio is not installed (pip install label-studio, in its own environment if you like, "
                    "and put it on PATH or set LABEL_STUDIO_BIN)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, method: str = "GET", body=None):
    request = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null")


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(tmp_path / "ls"), "COLLECT_ANALYTICS": "false",
           "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true"}
    log = open(tmp_path / "label-studio.log", "w")
    command = [label_studio(), "start", "--no-browser", "--port", str(port), "--data-dir", str(tmp_path / "ls"),
               "--username", "reviewer@example.com", "--password", "distill-review", "--user-token", TOKEN,
               "--enable-legacy-api-token"]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while True:
            try:
                call(f"{url}/api/projects")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if process.poll() is not None or time.time() > deadline:
                    logged = (tmp_path / "label-studio.log").read_text()[-3000:]
                    raise RuntimeError(f"label-studio did not start:\n{logged}")
                time.sleep(2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_a_review_round_trips_through_label_studio(server, tmp_path):
    queue = compose(candidates(), 12, 4, seed=0)
    tasks_file = write_tasks(queue, LABELS, tmp_path / "round-1.labelstudio.json")
    config = (tmp_path / "labelstudio.xml").read_text()
    assert config == labeling_config(LABELS)
    project = call(f"{server}/api/projects", "POST", {"title": "distill review", "label_config": config})["id"]
    call(f"{server}/api/projects/{project}/import", "POST", json.loads(tasks_file.read_text()))
    tasks = call(f"{server}/api/tasks?project={project}&page_size=100&fields=all")
    tasks = tasks["tasks"] if isinstance(tasks, dict) else tasks
    assert len(tasks) == 12
    answers = {}
    for n, task in enumerate(sorted(tasks, key=lambda t: t["id"])):
        if n % 3 == 2:
            continue  # a task nobody labelled: skipped, like an empty gold cell
        label = LABELS[n % 2]
        result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]
        call(f"{server}/api/tasks/{task['id']}/annotations", "POST", {"result": result, "was_cancelled": False})
        answers[task["data"]["text"]] = label
    export = tmp_path / "export.json"  # every task, the unlabelled ones too
    export.write_bytes(urllib.request.urlopen(urllib.request.Request(
        f"{server}/api/projects/{project}/export?exportType=JSON&download_all_tasks=true",
        headers={"Authorization": f"Token {TOKEN}"}), timeout=120).read())
    assert len(json.loads(export.read_text())) == 12
    for task in tasks:  # the teacher's and the student's labels came in as pre-annotations
        predictions = call(f"{server}/api/predictions?task={task['id']}")
        predicted = {p["model_version"]: p["result"][0]["value"]["choices"] for p in predictions}
        row = queue[queue["text"] == task["data"]["text"]].iloc[0]
        assert predicted == {"teacher": [row["teacher_label"]], "student": [row["student_label"]]}
    read = read_answers([export], LABELS)
    assert dict(zip(read.texts, read.gold)) == answers and read.n_blank == 12 - len(answers)
    parts = dict(zip(queue["text"], queue["part"]))
    assert read.parts == [parts[t] for t in read.texts]  # the random / chosen part survives the trip
