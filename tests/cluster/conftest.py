"""Fixtures for the StreamCluster tests: small zoo models on disk and one Ray instance per module."""

import pytest

from streamlstm.tools.zoo import zoo_network


@pytest.fixture(scope="module")
def kws_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "kws.npz"
    zoo_network("kws").save(path)
    return path


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny.npz"
    zoo_network("tiny").save(path)
    return path


@pytest.fixture(scope="module")
def local_ray():
    import ray
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
