"""The AWS rehearsal rig: moto's server with a stand-in SSM agent and rehearsal hosts.

One Python process: moto's own WSGI application (the one ``moto_server`` serves), wrapped
by a small WSGI middleware. The middleware answers SSM Run Command (rig_ssm) and the rig's
control API; every other request goes to moto unchanged. After each EC2 request it looks
at moto's instances (in-process, no extra HTTP) and gives each new one a rehearsal host
(rig_hosts), whose loopback address becomes the instance's private address in moto.

Control API (plain HTTP, for tests and operators):
    GET  /rig/hosts                     [{instance_id, address, root, up, registered}]
    GET  /rig/ecs                       the ECS deployments the rig rolled out, in order
    POST /rig/hosts/<instance-id>/down  the agent can no longer reach the host
    POST /rig/hosts/<instance-id>/up    it can again

Usage: aws_rig.py -p PORT --hosts DIR [--neo4j-version V] [--boot-seconds S]
It prints ``rig ready on http://127.0.0.1:PORT`` once it serves. SIGTERM (or the death of
--parent-pid) stops every host's Neo4j and running command, then exits.
"""

import argparse
import json
import os
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
from moto.ec2.models import ec2_backends  # noqa: E402
from moto.ec2.models.instances import InstanceBackend  # noqa: E402
from moto.ecs.models import EC2ContainerServiceBackend  # noqa: E402
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

import rig_hosts  # noqa: E402
import rig_ssm  # noqa: E402

SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))


def pinned_neo4j_version():
    with open(os.path.join(ROOT, "ami/versions.env")) as f:
        for line in f:
            if line.startswith("NEO4J_VERSION="):
                return line.split("=", 1)[1].strip()
    raise SystemExit("ami/versions.env has no NEO4J_VERSION")


class Rig:
    def __init__(self, app, hosts, agent, default_region, rollouts):
        self.app = app
        self.rollouts = rollouts
        self.hosts = hosts
        self.agent = agent
        self.default_region = default_region
        self.ec2_lock = threading.Lock()

    def reconcile(self, region):
        with self.ec2_lock:
            backend = ec2_backends[DEFAULT_ACCOUNT_ID][region]
            self.hosts.reconcile(backend.all_instances(), region)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/rig/"):
            return self.control(environ, start_response, path)
        scope = SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        region, service = (scope.group(1), scope.group(2)) if scope else (self.default_region, "")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("AmazonSSM."):
            action = target.split(".", 1)[1]
            if action in rig_ssm.ACTIONS:
                return self.ssm(environ, start_response, action, region)
        if service == "ec2":
            result = list(self.app(environ, start_response))
            self.reconcile(region)
            return result
        return self.app(environ, start_response)

    def ssm(self, environ, start_response, action, region):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b"{}"
        try:
            params = json.loads(body or b"{}")
            self.reconcile(region)
            result = self.agent.handle(action, params, region)
            status, payload = "200 OK", result
        except rig_ssm.SsmError as e:
            status, payload = "400 Bad Request", {"__type": e.code, "message": e.message}
        except json.JSONDecodeError as e:
            status, payload = "400 Bad Request", {"__type": "SerializationException", "message": str(e)}
        data = json.dumps(payload).encode()
        start_response(status, [("Content-Type", "application/x-amz-json-1.1"),
                                ("Content-Length", str(len(data))),
                                ("x-amzn-RequestId", rig_ssm.uuid.uuid4().hex)])
        return [data]

    def control(self, environ, start_response, path):
        method = environ.get("REQUEST_METHOD", "GET")
        parts = path.strip("/").split("/")
        status, payload = "404 Not Found", {"error": f"no such rig endpoint: {method} {path}"}
        if parts == ["rig", "hosts"] and method == "GET":
            status, payload = "200 OK", [
                {"instance_id": h.instance_id, "address": h.address, "root": h.root,
                 "up": h.up, "registered": h.registered_at is not None}
                for h in self.hosts.all()]
        elif parts == ["rig", "ecs"] and method == "GET":
            with self.rollouts["lock"]:
                status, payload = "200 OK", list(self.rollouts["log"])
        elif len(parts) == 4 and parts[:2] == ["rig", "hosts"] and parts[3] in ("up", "down") and method == "POST":
            host = self.hosts.get(parts[2])
            if host is None:
                payload = {"error": f"no rehearsal host for instance {parts[2]}"}
            else:
                host.forced_down = parts[3] == "down"
                status, payload = "200 OK", {"instance_id": host.instance_id, "up": host.up}
        data = json.dumps(payload).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


def give_new_instances_hosts(hosts):
    """Hosts (and their addresses) are made inside RunInstances, before moto renders its
    answer, so even the RunInstances response reports the loopback address.

    A RunInstances with a ClientToken already used answers with the instances that token
    launched, as EC2 does (moto launches new ones): a client's retry of a launch whose
    answer it never got, e.g. after a slow host creation here, launches nothing twice."""
    original = InstanceBackend.run_instances
    launched = {}
    lock = threading.Lock()

    def run_instances(backend, *args, **kwargs):
        token = kwargs.get("client_token")
        # moto fills in "ABCDE" when the request has no ClientToken.
        key = (backend.account_id, backend.region_name, token) if token and token != "ABCDE" else None
        with lock:
            reservation = launched.get(key) if key else None
            if reservation is not None:
                print(f"rig: RunInstances with ClientToken {token} again: the instances it launched",
                      file=sys.stderr, flush=True)
            else:
                reservation = original(backend, *args, **kwargs)
                if key:
                    launched[key] = reservation
        hosts.reconcile(reservation.instances, backend.region_name)
        return reservation

    InstanceBackend.run_instances = run_instances


def roll_out_ecs_deployments(settle_seconds):
    """moto never rolls a deployment out: after UpdateService the rig shows the new
    deployment IN_PROGRESS (no task running) and, ``settle_seconds`` later, COMPLETED with
    every desired task running, as ECS does once old tasks stopped and new ones started.
    Each rollout is logged (GET /rig/ecs) so a test can see the application restart."""
    rollouts = {"lock": threading.Lock(), "log": []}
    original = EC2ContainerServiceBackend.update_service

    def update_service(backend, service_properties):
        service = original(backend, service_properties)
        if not service.deployments:
            return service
        deployment = service.deployments[0]
        deployment["rolloutState"] = "IN_PROGRESS"
        deployment["runningCount"] = 0
        deployment["pendingCount"] = service.desired_count
        deployment["desiredCount"] = service.desired_count
        entry = {"service": service.name, "deployment": deployment["id"],
                 "task_definition": service.task_definition, "started": time.time(), "settled": None}
        with rollouts["lock"]:
            rollouts["log"].append(entry)

        def settle():
            time.sleep(settle_seconds)
            deployment["rolloutState"] = "COMPLETED"
            deployment["runningCount"] = service.desired_count
            deployment["pendingCount"] = 0
            with rollouts["lock"]:
                entry["settled"] = time.time()

        threading.Thread(target=settle, daemon=True).start()
        return service

    EC2ContainerServiceBackend.update_service = update_service
    return rollouts


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--hosts", required=True, help="directory for the rehearsal hosts")
    parser.add_argument("--neo4j-version", default=None, help="default: NEO4J_VERSION of ami/versions.env")
    parser.add_argument("--neo4j-tools", default=os.path.join(ROOT, ".tools/neo4j"))
    parser.add_argument("--aws-cli", default=os.path.join(os.path.dirname(sys.executable), "aws"))
    parser.add_argument("--region", default="af-south-1", help="region of requests without a signature")
    parser.add_argument("--heap", default="256m", help="heap of every host's Neo4j")
    parser.add_argument("--boot-seconds", type=float, default=1.0, help="agent registration delay")
    parser.add_argument("--ecs-settle-seconds", type=float, default=3.0,
                        help="how long a new ECS deployment takes to settle")
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when this process is gone")
    args = parser.parse_args()
    if args.host != "127.0.0.1" and not args.host.startswith("127."):
        raise SystemExit("the rig serves on loopback only (127.0.0.0/8)")

    version = args.neo4j_version or pinned_neo4j_version()
    install = os.path.join(args.neo4j_tools, version)
    for needed in ("lib", "bin/neo4j-admin", "java-home"):
        if not os.path.exists(os.path.join(install, needed)):
            raise SystemExit(f"Neo4j {version} is not installed ({install}/{needed} is missing): run `make setup`")
    if not os.access(args.aws_cli, os.X_OK):
        raise SystemExit(f"the AWS CLI {args.aws_cli} is missing: run `make setup`")
    os.makedirs(args.hosts, exist_ok=True)

    endpoint = f"http://{args.host}:{args.port}"
    hosts = rig_hosts.Hosts(os.path.abspath(args.hosts), install, version, args.aws_cli, endpoint, args.region, args.heap)
    clients = {}

    def s3_client(region):
        if region not in clients:
            clients[region] = boto3.client(
                "s3", region_name=region, endpoint_url=endpoint,
                aws_access_key_id="testing", aws_secret_access_key="testing",
                config=Config(s3={"addressing_style": "path"}))
        return clients[region]

    agent = rig_ssm.Agent(hosts, s3_client, args.boot_seconds)
    give_new_instances_hosts(hosts)
    rollouts = roll_out_ecs_deployments(args.ecs_settle_seconds)
    app = DomainDispatcherApplication(create_backend_app)
    rig = Rig(app, hosts, agent, args.region, rollouts)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    server = make_server(args.host, args.port, rig, threaded=True)

    stopped = threading.Event()

    def stop(*_):
        if stopped.is_set():
            return
        stopped.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.parent_pid:
        def watch():
            while not stopped.is_set():
                try:
                    os.kill(args.parent_pid, 0)
                except ProcessLookupError:
                    stop()
                    return
                time.sleep(1)
        threading.Thread(target=watch, daemon=True).start()

    print(f"rig ready on {endpoint} (Neo4j {version}, hosts in {args.hosts})", flush=True)
    try:
        server.serve_forever()
    finally:
        agent.shutdown()
        hosts.stop_all()
        print("rig stopped; every host's Neo4j is stopped", flush=True)


if __name__ == "__main__":
    main()
