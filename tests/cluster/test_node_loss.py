"""Node loss: two Ray nodes on this machine (ray.cluster_utils.Cluster), one shard on each; the
worker node is removed mid-run and every output stays bit-identical to one SessionPool."""

import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster

from streamlstm.cluster import StreamCluster
from support.cluster_reference import Reference, assert_same_states, frames


@pytest.fixture(scope="module")
def two_nodes():
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    worker = nodes.add_node(num_cpus=2)
    nodes.wait_for_nodes()
    ray.init(address=nodes.address, log_to_driver=False)
    yield nodes, worker
    ray.shutdown()
    nodes.shutdown()


def test_remove_a_node_mid_run(two_nodes, kws_path):
    nodes, worker = two_nodes
    ref = Reference(kws_path)
    rng = np.random.default_rng(11)
    with StreamCluster(kws_path, shards=2, capacity=128, snapshot_every=10,
                       actor_options={"scheduling_strategy": "SPREAD"}) as c:
        placed = {ray.get(a.describe.remote())["node"] for a in c.shards}
        assert worker.node_id in placed and len(placed) == 2
        for k in range(128):
            c.open(f"dev{k}")
            ref.open(f"dev{k}")
        keys = list(ref.sids)
        for t in range(60):
            if t == 27:
                nodes.remove_node(worker)
            sub = [k for k in keys if rng.random() < 0.9]
            X = frames(rng, len(sub), ref.model.input_size)
            assert np.array_equal(c.step(sub, X), ref.step(sub, X)), f"step {t}"
        assert c.recoveries == 1
        assert {ray.get(a.describe.remote())["node"] for a in c.shards} == placed - {worker.node_id}
        assert_same_states(c, ref)
