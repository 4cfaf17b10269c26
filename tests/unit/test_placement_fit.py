"""A replica's resources against the live nodes: what is missing, by name."""

from deployments.core.placement_fit import (
    describe_missing,
    fits,
    missing_resources,
    replica_demand,
)

CPU_NODE = {"CPU": 1, "cpu_node": 1}
H100_NODE = {"CPU": 1, "accelerator_type:H100": 1}


def test_a_replica_some_node_holds_misses_nothing():
    assert missing_resources({"CPU": 0.5, "cpu_node": 0.001}, [H100_NODE, CPU_NODE]) == {}


def test_a_resource_no_node_has_is_named_with_what_a_replica_needs():
    required = {"CPU": 0.5, "accelerator_type:A10G": 0.001}
    assert missing_resources(required, [H100_NODE, CPU_NODE]) == {"accelerator_type:A10G": 0.001}


def test_too_little_of_a_resource_counts_as_missing():
    assert missing_resources({"CPU": 2}, [CPU_NODE, H100_NODE]) == {"CPU": 2}


def test_resources_on_different_nodes_but_never_together_are_all_named():
    required = {"cpu_node": 0.001, "accelerator_type:H100": 1}
    assert missing_resources(required, [CPU_NODE, H100_NODE]) == required


def test_with_no_live_node_everything_is_missing_and_zero_asks_are_ignored():
    assert missing_resources({"CPU": 0.5, "GPU": 0}, []) == {"CPU": 0.5}
    assert fits({"GPU": 0}, CPU_NODE)


def test_the_description_names_each_missing_resource_and_amount():
    assert describe_missing({"accelerator_type:A10G": 0.001, "CPU": 2}) == (
        "CPU 2, accelerator_type:A10G 0.001")


def test_a_replicas_demand_is_what_ray_schedules_it_by():
    options = {"num_cpus": 0.5, "num_gpus": 0, "accelerator_type": "A10G",
               "resources": {"cpu_node": 0.001}, "runtime_env": {}}
    assert replica_demand(options) == {"CPU": 0.5, "accelerator_type:A10G": 0.001,
                                       "cpu_node": 0.001}
    assert replica_demand({}) == {"CPU": 1}
