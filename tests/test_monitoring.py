"""The dashboard, the stuck-backlog alarm and their outputs, read from the synthesized template."""

from __future__ import annotations

import json
import logging
import re
import warnings
from typing import Any

import boto3
import pytest
from moto import mock_aws

from client.emulator_template import prepare_for_emulator
from tests.synth import Synth, render, synthesized
from worker_src import contract, registry

CONTEXTS = {
    "default": {},
    "scaled": {"stack_name": "wqw-mon", "max_workers": "3", "visibility_timeout": "45"},
}
SEARCH = re.compile(
    r"""SEARCH\('\{"(?P<namespace>[^"]+)",(?P<dimensions>[\w,]+)\} MetricName="(?P<metric>\w+)"',"""
    r""" '(?P<statistic>\w+)', (?P<period>\d+)\)""")


def widgets(synth: Synth) -> list[dict[str, Any]]:
    _, dashboard = synth.one("AWS::CloudWatch::Dashboard")
    return json.loads(render(dashboard["Properties"]["DashboardBody"]))["widgets"]


@pytest.fixture(scope="module", params=sorted(CONTEXTS))
def synth(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesized(CONTEXTS[request.param], tmp_path_factory)


def widget(synth: Synth, title_start: str) -> dict[str, Any]:
    (found,) = [w for w in widgets(synth) if w["properties"]["title"].startswith(title_start)]
    return found["properties"]


def plain_metrics(properties: dict[str, Any]) -> list[tuple[str, str, dict[str, str], dict]]:
    """(namespace, metric, dimensions, options) of each non-expression line of a graph.

    Options get the dashboard body's defaults (CDK leaves them out): the widget's stat and
    period, else Average over 300 s.
    """
    defaults = {"stat": properties.get("stat", "Average"),
                "period": properties.get("period", 300)}
    lines = []
    for line in properties["metrics"]:
        if isinstance(line[-1], dict) and "expression" in line[-1]:
            continue
        options = {**defaults, **line[-1]} if isinstance(line[-1], dict) else defaults
        names = line[:-1] if isinstance(line[-1], dict) else line
        namespace, metric, *pairs = names
        lines.append((namespace, metric, dict(zip(pairs[::2], pairs[1::2], strict=True)),
                      options))
    return lines


def searches(properties: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for line in properties["metrics"]:
        if isinstance(line[-1], dict) and "expression" in line[-1]:
            match = SEARCH.fullmatch(line[-1]["expression"])
            assert match, line[-1]["expression"]
            found.append({**match.groupdict(), "label": line[-1].get("label", "")})
    return found


# --- the dashboard ---------------------------------------------------------------------------

def test_queue_widgets_name_the_stacks_own_queues(synth: Synth) -> None:
    requests, dead = synth.queues()
    own = {"${" + requests + ".QueueName}": "requests", "${" + dead + ".QueueName}": "dead"}
    shown = {
        (own[dims["QueueName"]], metric, options["stat"], options["period"])
        for w in widgets(synth) for namespace, metric, dims, options in
        plain_metrics(w["properties"]) if namespace == "AWS/SQS"
    }
    assert shown == {
        ("requests", "ApproximateNumberOfMessagesVisible", "Maximum", 60),
        ("requests", "ApproximateNumberOfMessagesNotVisible", "Maximum", 60),
        ("requests", "ApproximateAgeOfOldestMessage", "Maximum", 60),
        ("dead", "ApproximateNumberOfMessagesVisible", "Maximum", 60),
        ("dead", "ApproximateNumberOfMessagesNotVisible", "Maximum", 60),
        ("dead", "ApproximateAgeOfOldestMessage", "Maximum", 60),
    }
    waiting = plain_metrics(widget(synth, "Requests waiting"))
    assert {(m, d["QueueName"]) for _, m, d, _ in waiting} == {
        ("ApproximateNumberOfMessagesVisible", "${" + requests + ".QueueName}"),
        ("ApproximateNumberOfMessagesNotVisible", "${" + requests + ".QueueName}")}
    dead_letters = widget(synth, "Dead letters")
    assert {d["QueueName"] for _, _, d, _ in plain_metrics(dead_letters)} == {
        "${" + dead + ".QueueName}"}


def test_oldest_job_graph_draws_the_alarms_threshold(synth: Synth) -> None:
    requests, _ = synth.queues()
    _, alarm = synth.one("AWS::CloudWatch::Alarm", MetricName="ApproximateAgeOfOldestMessage")
    properties = widget(synth, "Age of the oldest waiting job")
    ((_, metric, dims, _),) = plain_metrics(properties)
    assert (metric, dims) == ("ApproximateAgeOfOldestMessage",
                              {"QueueName": "${" + requests + ".QueueName}"})
    (line,) = properties["annotations"]["horizontal"]
    assert line["value"] == alarm["Properties"]["Threshold"]


def test_worker_widgets_name_the_stacks_own_group(synth: Synth) -> None:
    group, _ = synth.one("AWS::AutoScaling::AutoScalingGroup")
    shown = {
        (namespace, metric, options["stat"], options["period"], dims["AutoScalingGroupName"])
        for w in widgets(synth) for namespace, metric, dims, options in
        plain_metrics(w["properties"]) if namespace in ("AWS/AutoScaling", "AWS/EC2")
    }
    mine = "${" + group + "}"
    # EC2 basic monitoring reports every 5 minutes; group metrics every minute.
    assert shown == {
        ("AWS/AutoScaling", "GroupInServiceInstances", "Maximum", 60, mine),
        ("AWS/EC2", "CPUUtilization", "Average", 300, mine),
        ("AWS/EC2", "CPUUtilization", "Maximum", 300, mine),
        ("AWS/EC2", "CPUCreditBalance", "Minimum", 300, mine),
    }


def test_job_widgets_search_the_workers_metrics_by_kind(synth: Synth) -> None:
    namespace = synth.outputs()[contract.StackOutput.METRIC_NAMESPACE]
    assert namespace == contract.metric_namespace(synth.config.stack_name)
    jobs = searches(widget(synth, "Jobs per minute"))
    run = searches(widget(synth, "Run time by kind"))
    found = {(s["namespace"], s["metric"], tuple(s["dimensions"].split(",")), s["statistic"],
              s["period"]) for s in jobs + run}
    by_outcome, by_kind = contract.Metric.DIMENSION_SETS
    assert found == {
        (namespace, contract.Metric.JOBS, tuple(by_outcome), "Sum", "60"),
        (namespace, contract.Metric.RUN, tuple(by_kind), "p50", "60"),
        (namespace, contract.Metric.RUN, tuple(by_kind), "p95", "60"),
    }
    # one line per kind found in the data: labelled from its dimensions, no kind listed
    assert all("${PROP('Dim.Kind')}" in s["label"] for s in jobs + run)
    body = json.dumps(widgets(synth))
    for kind in registry.kinds():
        assert not re.search(rf"\b{re.escape(kind)}\b", body), kind


def test_widgets_fit_the_grid_without_overlap(synth: Synth) -> None:
    taken: set[tuple[int, int]] = set()
    for w in widgets(synth):
        assert w["x"] + w["width"] <= 24
        cells = {(x, y) for x in range(w["x"], w["x"] + w["width"])
                 for y in range(w["y"], w["y"] + w["height"])}
        assert not cells & taken, w["properties"]["title"]
        taken |= cells


def test_group_collects_the_in_service_metric(synth: Synth) -> None:
    _, group = synth.one("AWS::AutoScaling::AutoScalingGroup")
    collected = {m for c in group["Properties"].get("MetricsCollection", [])
                 for m in c.get("Metrics", [])}
    assert "GroupInServiceInstances" in collected


# --- the stuck-backlog alarm -----------------------------------------------------------------

def test_backlog_alarm_watches_the_oldest_jobs_age_and_notifies_the_topic(synth: Synth) -> None:
    requests, _ = synth.queues()
    topic, _ = synth.one("AWS::SNS::Topic")
    _, alarm = synth.one("AWS::CloudWatch::Alarm", MetricName="ApproximateAgeOfOldestMessage")
    props = alarm["Properties"]
    assert props["Namespace"] == "AWS/SQS"
    assert props["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [requests, "QueueName"]}}]
    assert (props["Statistic"], props["Period"], props["EvaluationPeriods"]) == ("Maximum", 60, 1)
    assert props["ComparisonOperator"] == "GreaterThanThreshold"
    assert props["AlarmActions"] == props["OKActions"] == [{"Ref": topic}]
    assert props["TreatMissingData"] == "notBreaching"
    # above every age a healthy stack reaches: a job whose 3 receives each waited out the
    # visibility timeout, plus 5 minutes for a new worker to install
    timeout = synth.config.visibility_timeout
    assert props["Threshold"] == contract.MAX_RECEIVE_COUNT * timeout + 300
    queue = synth.resources[requests]["Properties"]
    assert queue["VisibilityTimeout"] == timeout
    assert queue["RedrivePolicy"]["maxReceiveCount"] == contract.MAX_RECEIVE_COUNT


# --- outputs and the local stack --------------------------------------------------------------

def test_dashboard_url_output(synth: Synth) -> None:
    dashboard, resource = synth.one("AWS::CloudWatch::Dashboard")
    assert render(resource["Properties"]["DashboardName"]) == (
        f"{synth.config.stack_name}-${{AWS::Region}}")
    assert render(synth.outputs()[contract.StackOutput.DASHBOARD_URL]) == (
        "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home"
        "?region=${AWS::Region}#dashboards:name=${" + dashboard + "}")


def test_local_stack_keeps_the_dashboard_and_its_outputs(synth: Synth) -> None:
    prepared = prepare_for_emulator(synth.json)
    assert {"AWS::CloudWatch::Dashboard", "AWS::CloudWatch::Alarm"} <= {
        r["Type"] for r in prepared["Resources"].values()}
    logging.getLogger("moto").setLevel(logging.ERROR)
    region, name = "eu-west-1", synth.config.stack_name
    with warnings.catch_warnings(), mock_aws():
        warnings.simplefilter("ignore")  # moto names the resource types it only skips
        cloudformation = boto3.client("cloudformation", region_name=region)
        cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(prepared),
                                    Capabilities=["CAPABILITY_IAM"])
        (stack,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        dashboard = f"{name}-{region}"
        assert outputs[contract.StackOutput.DASHBOARD_URL] == (
            f"https://{region}.console.aws.amazon.com/cloudwatch/home"
            f"?region={region}#dashboards:name={dashboard}")
        assert outputs[contract.StackOutput.METRIC_NAMESPACE] == contract.metric_namespace(name)
        body = json.loads(boto3.client("cloudwatch", region_name=region).get_dashboard(
            DashboardName=dashboard)["DashboardBody"])
        queue_name = outputs[contract.StackOutput.REQUEST_QUEUE_URL].rsplit("/", 1)[1]
        shown = {line[3] for w in body["widgets"] for line in w["properties"]["metrics"]
                 if line[0] == "AWS/SQS"}
        assert queue_name in shown
        assert outputs[contract.StackOutput.WORKER_GROUP_NAME] in {
            line[3] for w in body["widgets"] for line in w["properties"]["metrics"]
            if line[0] == "AWS/AutoScaling"}
