"""A real Ray farm on this machine: a head and worker nodes (processes) whose custom resource
``dreamcad_gpu`` stands in for GPUs, a real ``serve --ray`` front door, real jobs on the built-in
``procedural`` model, driven by a real ZeroMQ client.

Everything runs inside a private network namespace (tests/support/private_network.py): the one
test collected normally re-runs this module there, where the others run. Covers: Ray bound to
loopback only, jobs spread over nodes with where-they-ran in the manifest, cancel reaching an
actor, a worker node killed mid-job (nothing lost or run twice), and the front door killed and
restarted while the cluster runs (everything finishes). The front door serves metrics and logs
JSON lines: the actors' model loads and the placements are scraped, ping lists the actors (an
actor killed and recreated counts a restart) and the actors' job lines are in its log.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from shared_protocol.client import BackendClient
from shared_protocol.messages import (
    CancelRequest,
    FetchRequest,
    JobFailedEvent,
    PingReply,
    PingRequest,
    ResultEvent,
    StatusRequest,
    SubmitReply,
    SubmitRequest,
)
from tests.support import private_network
from tests.support.backend_process import REPO, BackendProcess, free_port
from tests.support.prometheus import Samples, scrape, value

pytestmark = pytest.mark.slow

RESOURCE = "dreamcad_gpu"
QUICK = {"resolution": 48, "steps": 6}
MEDIUM = {"resolution": 160, "steps": 80}  # a few seconds: long enough to be killed mid-job
LONG = {"resolution": 320, "steps": 320}
NODE_MEMORY = 80 * 2**20  # object store per node: results are small
RAY_CORE_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,]+ [DIWEF] \d+ \d+\] \w+\.cc:\d+: ")


def test_the_farm_in_a_private_network_namespace() -> None:
    """Runs this module's farm tests where only ``lo`` exists; their output on failure."""
    if private_network.inside():
        pytest.skip("already inside the private namespace")
    pytest.importorskip("ray", reason="the cluster extra (ray) is not installed")
    if private_network.unshare_command() is None:
        pytest.skip("unshare -n / -rn is not permitted here: no private network for Ray")
    result = private_network.rerun_inside(Path(__file__), timeout_s=400)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    # Every farm test ran there (none skipped for a missing part): only this one is skipped.
    assert "7 passed, 1 skipped" in result.stdout, result.stdout[-3000:]


farm_only = pytest.mark.skipif(
    not private_network.inside(), reason="runs inside the private namespace (test above)"
)


@pytest.fixture(scope="module")
def cluster():
    ray_cluster_utils = pytest.importorskip("ray.cluster_utils")
    os.environ["PYTHONPATH"] = str(REPO)  # the actors import this checkout's backend
    farm = ray_cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "object_store_memory": NODE_MEMORY,
                        "include_dashboard": False},
    )
    for _ in range(2):
        add_worker_node(farm)
    ray = pytest.importorskip("ray")
    ray.init(address=farm.address, logging_level="WARNING")  # to read the cluster's state
    try:
        yield farm
    finally:
        ray.shutdown()
        farm.shutdown()


def add_worker_node(farm):
    return farm.add_node(num_cpus=1, resources={RESOURCE: 1}, object_store_memory=NODE_MEMORY)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("farm") / "data"


class FrontDoor(BackendProcess):
    """``serve --ray`` with metrics on a free loopback port and JSON log lines."""

    def __init__(self, cluster, data_dir: Path, port: int | None = None) -> None:
        metrics_port = free_port()
        super().__init__(data_dir, "--ray", cluster.address, "--ray-resource", RESOURCE,
                         "--metrics-address", f"127.0.0.1:{metrics_port}", "--log-json",
                         port=port)
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"


def front_door(cluster, data_dir: Path, port: int | None = None) -> FrontDoor:
    process = FrontDoor(cluster, data_dir, port)
    process.start(wait_s=120)
    return process


@pytest.fixture(scope="module")
def backend(cluster, data_dir):
    process = front_door(cluster, data_dir)
    try:
        wait_for_workers(process.address, 2)
        yield process
    finally:
        process.stop()


def wait_for_workers(address: str, count: int, timeout_s: float = 120) -> PingReply:
    deadline = time.monotonic() + timeout_s
    with BackendClient(address) as client:
        while time.monotonic() < deadline:
            ping = client.request(PingRequest(), timeout_s=10)
            if sum(worker.alive for worker in ping.workers) >= count:
                return ping
            time.sleep(0.5)
    raise TimeoutError(f"fewer than {count} Ray workers ready: {ping.workers}")


def submit(client: BackendClient, params: dict, prompt: str = "a red torus") -> str:
    reply = client.request(
        SubmitRequest(model="procedural", task="text", prompt=prompt, parameters=params,
                      target_faces=2000, texture_size=256),
        timeout_s=10,
    )
    assert isinstance(reply, SubmitReply)
    return reply.job_id


def ends_of(client: BackendClient, job_ids: set[str], timeout_s: float = 150) -> Counter:
    """Every end event received for ``job_ids`` until each has one; counted per job."""
    ends: dict[str, list] = {job_id: [] for job_id in job_ids}
    deadline = time.monotonic() + timeout_s
    while not all(ends.values()) and time.monotonic() < deadline:
        envelope = client.receive(timeout_s=0.5)
        message = envelope.message if envelope else None
        if isinstance(message, (ResultEvent, JobFailedEvent)) and message.job_id in ends:
            ends[message.job_id].append(message)
    time.sleep(1.0)  # a duplicate outcome would arrive now
    while (envelope := client.receive(timeout_s=0.2)) is not None:
        message = envelope.message
        if isinstance(message, (ResultEvent, JobFailedEvent)) and message.job_id in ends:
            ends[message.job_id].append(message)
    missing = [job_id for job_id, got in ends.items() if not got]
    assert not missing, f"no outcome for {missing}"
    return ends


def assert_all_succeeded(ends: dict[str, list]) -> dict[str, ResultEvent]:
    for job_id, got in ends.items():
        assert len(got) == 1, f"job {job_id} ended {len(got)} times: {got}"
        assert isinstance(got[0], ResultEvent), got[0]
        assert got[0].asset[:4] == b"glTF" and got[0].manifest.faces > 0
    return {job_id: got[0] for job_id, got in ends.items()}


def running_on(address: str, job_id: str, timeout_s: float = 60) -> str:
    """The worker label (``IP/node:device``) running ``job_id``, once it runs."""
    deadline = time.monotonic() + timeout_s
    with BackendClient(address) as client:
        while time.monotonic() < deadline:
            for worker in client.request(PingRequest(), timeout_s=10).workers:
                if worker.job_id == job_id:
                    return worker.device
            time.sleep(0.1)
    raise TimeoutError(f"job {job_id} never ran")


@farm_only
def test_ray_listens_on_loopback_only(cluster, backend) -> None:
    import ray

    assert private_network.interfaces() == ["lo"]
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    listening = private_network.listening_addresses()
    assert listening, "no listening sockets found: the check would prove nothing"
    assert listening <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, listening


@farm_only
def test_jobs_spread_over_the_nodes_and_say_where_they_ran(backend) -> None:
    with BackendClient(backend.address) as client:
        job_ids = {submit(client, QUICK, prompt) for prompt in
                   ("a red torus", "a blue cube", "a green sphere", "a gold cone")}
        results = assert_all_succeeded(ends_of(client, job_ids))
    nodes = {result.manifest.node for result in results.values()}
    assert len(nodes) == 2, nodes  # both worker nodes took jobs
    assert all(node.startswith("127.0.0.1/") for node in nodes)
    assert {result.manifest.device for result in results.values()} == {"cpu"}


def sum_of(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def scrape_until(url: str, ready, timeout_s: float = 10) -> Samples:
    deadline = time.monotonic() + timeout_s
    while not ready(samples := scrape(url)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return samples


@farm_only
def test_metrics_ping_and_logs_see_the_actors(backend) -> None:
    with BackendClient(backend.address) as client:
        job_id = submit(client, QUICK, "a violet torus")
        assert_all_succeeded(ends_of(client, {job_id}))
        ping = client.request(PingRequest(), timeout_s=10)
    labels = {worker.device for worker in ping.workers}
    assert len(labels) == 2 and all(label.startswith("127.0.0.1/") for label in labels), labels
    assert all(w.alive and w.restarts == 0 and w.job_id is None for w in ping.workers)

    # Every job so far ended (metrics look at the store about once a second).
    samples = scrape_until(backend.metrics_url, lambda s: value(
        s, "dreamcad_jobs", state="succeeded", model="procedural"
    ) == sum_of(s, "dreamcad_jobs_finished_total", state="succeeded"))
    finished = sum_of(samples, "dreamcad_jobs_finished_total")
    hits = value(samples, "dreamcad_placement_total", hit="true") or 0
    misses = value(samples, "dreamcad_placement_total", hit="false") or 0
    assert finished >= 5 and hits + misses == finished, (finished, hits, misses)
    assert hits >= 1  # several jobs on one model over two actors: some found it loaded
    # A miss is one load on the actor it went to (no budget: nothing is evicted).
    loads = {label: value(samples, "dreamcad_model_loads_total", model="procedural",
                          device=label) for label in labels}
    assert sum(count or 0 for count in loads.values()) == misses, loads
    assert all(count == 1 for count in loads.values()), loads  # both actors worked
    for label in labels:
        assert value(samples, "dreamcad_models_loaded", model="procedural", device=label) == 1
        assert value(samples, "dreamcad_worker_up", device=label) == 1
        assert value(samples, "dreamcad_worker_busy", device=label) == 0
    assert sum_of(samples, "dreamcad_model_load_seconds_count", model="procedural") == misses

    lines = backend.log().splitlines()
    # Ray's C++ core writes its own lines (``[time W pid tid] file.cc:N: ...``) on the front
    # door's stderr, outside Python's logging; everything else is one JSON object a line.
    native = [line for line in lines if RAY_CORE_LINE.match(line)]
    entries = [json.loads(line) for line in lines if line not in native]
    assert len(native) < 5, native
    ran = [e for e in entries if e["message"].startswith(f"job {job_id}: procedural on ")]
    assert len(ran) == 1, ran  # the actor's own line, carried to the front door's log
    assert ran[0]["logger"] == "backend.cluster.actor" and ran[0].get("job_id") == job_id
    assert ran[0]["message"].split(" on ")[1].replace(" ", ":") in labels


@farm_only
def test_an_actor_killed_mid_job_is_recreated_and_ping_counts_it(cluster, backend) -> None:
    import ray

    with BackendClient(backend.address) as client:
        job_id = submit(client, MEDIUM, "an orange torus")
        label = running_on(backend.address, job_id)
        node = next(n for n in cluster.worker_nodes if n.node_id[:12] in label)
        ray.kill(ray.get_actor(f"worker-{RESOURCE}-{node.node_id[:16]}-0", namespace="dreamcad"))
        assert_all_succeeded(ends_of(client, {job_id}))
        assert client.request(StatusRequest(job_id=job_id), timeout_s=10).job.attempts == 2
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = {w.device: w for w in wait_for_workers(backend.address, 2).workers}
        if label in workers:
            break
        time.sleep(0.5)
    assert workers[label].alive and workers[label].restarts == 1, workers
    assert workers[label].last_error, workers[label]
    assert all(w.restarts == 0 for device, w in workers.items() if device != label), workers


@farm_only
def test_cancel_reaches_the_actor_within_a_step(backend) -> None:
    with BackendClient(backend.address) as client:
        job_id = submit(client, LONG)
        running_on(backend.address, job_id)
        client.request(CancelRequest(job_id=job_id), timeout_s=10)
        started = time.monotonic()
        ends = ends_of(client, {job_id}, timeout_s=30)
    assert time.monotonic() - started < 10
    (end,) = ends[job_id]
    assert isinstance(end, JobFailedEvent) and end.state == "cancelled"


@farm_only
def test_a_worker_node_killed_mid_job_loses_nothing(cluster, backend) -> None:
    spare = add_worker_node(cluster)  # two nodes stay when one is killed
    wait_for_workers(backend.address, 3)
    with BackendClient(backend.address) as client:
        job_ids = [submit(client, MEDIUM, f"a {colour} torus")
                   for colour in ("red", "blue", "green", "pink")]
        victim_label = running_on(backend.address, job_ids[0])
        victim = next(node for node in cluster.worker_nodes
                      if node.node_id[:12] in victim_label)
        cluster.remove_node(victim, allow_graceful=False)
        results = assert_all_succeeded(ends_of(client, set(job_ids)))
        retried = client.request(StatusRequest(job_id=job_ids[0]), timeout_s=10).job
    assert retried.attempts == 2  # counted as a crash, as a local worker's death is
    assert victim.node_id[:12] not in results[job_ids[0]].manifest.node
    assert spare is not None


@farm_only
def test_a_front_door_killed_and_restarted_finishes_everything(cluster, backend, data_dir) -> None:
    with BackendClient(backend.address) as client:
        job_ids = [submit(client, MEDIUM, f"a {colour} cube")
                   for colour in ("red", "blue", "green")]
        running_on(backend.address, job_ids[0])
    backend.kill()
    restarted = front_door(cluster, data_dir, port=backend.port)
    try:
        ping = wait_for_workers(restarted.address, 2)
        assert ping.instance_id
        with BackendClient(restarted.address) as client:
            unfinished = set()
            for job_id in job_ids:
                status = client.request(StatusRequest(job_id=job_id, watch=True), timeout_s=30)
                if status.job.state in ("queued", "running"):
                    unfinished.add(job_id)
            assert unfinished, "the kill came too late to test anything"
            assert_all_succeeded(ends_of(client, unfinished))
            for job_id in job_ids:
                job = client.request(StatusRequest(job_id=job_id), timeout_s=10).job
                assert job.state == "succeeded" and job.attempts <= 2, job
                fetched = client.request(FetchRequest(job_id=job_id), timeout_s=30)
                assert fetched.asset[:4] == b"glTF"
    finally:
        restarted.stop()
