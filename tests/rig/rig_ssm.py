"""The stand-in SSM agent: Run Command served the way SSM serves it.

SendCommand (document AWS-RunShellScript only), GetCommandInvocation,
ListCommandInvocations, ListCommands, CancelCommand and DescribeInstanceInformation are
answered here;
every other SSM action (Parameter Store, ...) goes to moto unchanged.

Semantics, per invocation (one command on one instance):
- SendCommand refuses (InvalidInstanceId) instances the agent never registered from, as
  SSM does; an instance whose host is down is accepted and stays Pending.
- Pending until the host is up, then InProgress; if the host is not up within the
  command's TimeoutSeconds: TimedOut / DeliveryTimedOut, nothing ran (ResponseCode -1).
- The commands are written to ``_script.sh`` in the command's directory on the host and
  run as the agent does (``sh -c <script>``: its shebang decides), in the host's
  environment (rig_hosts.Host.environment), in its own process group.
- Exit 0: Success; any other: Failed (ResponseCode = exit code). After executionTimeout:
  the process group is killed, TimedOut / ExecutionTimedOut. CancelCommand: killed (or
  never started), Cancelled.
- StandardOutputContent / StandardErrorContent are the first 24,000 characters, as SSM's
  API gives them; ListCommandInvocations' plugin Output the first 2,500. With
  OutputS3BucketName the full stdout and stderr are uploaded to
  ``<prefix>/<command-id>/<instance-id>/awsrunShellScript/0.awsrunShellScript/{stdout,stderr}``.
- DescribeInstanceInformation lists registered instances: PingStatus Online while the
  host is up, ConnectionLost while it is down. An agent registers ``boot_seconds`` after
  its host first came up.
"""

import json
import os
import signal
import subprocess
import threading
import time
import uuid

API_OUTPUT_LIMIT = 24_000
LIST_OUTPUT_LIMIT = 2_500
TERMINAL = {"Success", "Failed", "TimedOut", "Cancelled"}


class SsmError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class Invocation:
    def __init__(self, command, instance_id):
        self.command = command
        self.instance_id = instance_id
        self.status = "Pending"
        self.details = "Pending"
        self.response_code = -1
        self.started = None
        self.finished = None
        self.stdout = ""
        self.stderr = ""
        self.process = None
        self.cancel_requested = False
        self.lock = threading.Lock()

    def set(self, status, details):
        with self.lock:
            self.status, self.details = status, details

    def plugin(self, limit):
        c = self.command
        out = {
            "Name": "aws:runShellScript",
            "Status": self.status,
            "StatusDetails": self.details,
            "ResponseCode": self.response_code,
            "Output": self.stdout[:limit],
        }
        if self.started:
            out["ResponseStartDateTime"] = self.started
        if self.finished:
            out["ResponseFinishDateTime"] = self.finished
        if c.bucket:
            out["OutputS3Region"] = c.region
            out["OutputS3BucketName"] = c.bucket
            out["OutputS3KeyPrefix"] = c.prefix
            out["StandardOutputUrl"] = c.output_url(self.instance_id, "stdout")
            out["StandardErrorUrl"] = c.output_url(self.instance_id, "stderr")
        return out


class Command:
    def __init__(self, params, region):
        self.id = str(uuid.uuid4())
        self.region = region
        self.document = params["DocumentName"]
        self.comment = params.get("Comment", "")
        self.parameters = params.get("Parameters", {})
        self.instance_ids = list(params.get("InstanceIds", []))
        self.delivery_timeout = int(params.get("TimeoutSeconds", 3600))
        self.execution_timeout = int((self.parameters.get("executionTimeout") or ["3600"])[0])
        self.bucket = params.get("OutputS3BucketName")
        self.prefix = params.get("OutputS3KeyPrefix", "")
        self.requested = time.time()
        self.invocations = {i: Invocation(self, i) for i in self.instance_ids}

    def output_url(self, instance_id, stream):
        key = "/".join(p for p in (self.prefix.strip("/"), self.id, instance_id,
                                   "awsrunShellScript", "0.awsrunShellScript", stream) if p)
        return f"https://s3.{self.region}.amazonaws.com/{self.bucket}/{key}"

    def output_key(self, instance_id, stream):
        return "/".join(p for p in (self.prefix.strip("/"), self.id, instance_id,
                                    "awsrunShellScript", "0.awsrunShellScript", stream) if p)

    def status(self):
        statuses = [i.status for i in self.invocations.values()]
        if any(s not in TERMINAL for s in statuses):
            return "InProgress" if any(s != "Pending" for s in statuses) else "Pending"
        for s in ("Cancelled", "TimedOut", "Failed"):
            if s in statuses:
                return s
        return "Success"

    def describe(self):
        invocations = list(self.invocations.values())
        status = self.status()
        return {
            "CommandId": self.id,
            "DocumentName": self.document,
            "DocumentVersion": "1",
            "Comment": self.comment,
            "Parameters": self.parameters,
            "InstanceIds": self.instance_ids,
            "Targets": [],
            "RequestedDateTime": self.requested,
            "ExpiresAfter": self.requested + self.delivery_timeout,
            "Status": status,
            "StatusDetails": status,
            "OutputS3Region": self.region,
            "OutputS3BucketName": self.bucket or "",
            "OutputS3KeyPrefix": self.prefix,
            "MaxConcurrency": "50",
            "MaxErrors": "0",
            "TargetCount": len(invocations),
            "CompletedCount": sum(1 for i in invocations if i.status in TERMINAL),
            "ErrorCount": sum(1 for i in invocations if i.status in ("Failed", "TimedOut")),
            "DeliveryTimedOutCount": sum(1 for i in invocations if i.details == "DeliveryTimedOut"),
            "TimeoutSeconds": self.delivery_timeout,
            "ServiceRole": "",
            "NotificationConfig": {},
            "CloudWatchOutputConfig": {"CloudWatchOutputEnabled": False},
        }


class Agent:
    """Run Command over the rig's hosts."""

    def __init__(self, hosts, s3_client, boot_seconds):
        self.hosts = hosts
        self.s3_client = s3_client  # a callable(region) -> boto3 S3 client on the rig
        self.boot_seconds = boot_seconds
        self.commands = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    # -- registration ---------------------------------------------------------------
    def registered(self, host):
        if host.registered_at is None and host.up:
            if time.time() - host.created_at >= self.boot_seconds:
                host.registered_at = time.time()
        return host.registered_at is not None

    def describe_instance_information(self, params):
        wanted = None
        for f in params.get("Filters", []) or []:
            if f.get("Key") == "InstanceIds":
                wanted = set(f.get("Values", []))
        for f in params.get("InstanceInformationFilterList", []) or []:
            if f.get("key") == "InstanceIds":
                wanted = set(f.get("valueSet", []))
        out = []
        for host in self.hosts.all():
            if wanted is not None and host.instance_id not in wanted:
                continue
            if not self.registered(host):
                continue
            out.append({
                "InstanceId": host.instance_id,
                "PingStatus": "Online" if host.up else "ConnectionLost",
                "LastPingDateTime": time.time(),
                "AgentVersion": "3.3.0.0-rehearsal",
                "IsLatestVersion": True,
                "PlatformType": "Linux",
                "PlatformName": "Amazon Linux",
                "PlatformVersion": "2023",
                "ResourceType": "EC2Instance",
                "IPAddress": host.address,
                "ComputerName": host.instance_id,
            })
        return {"InstanceInformationList": out}

    # -- commands -----------------------------------------------------------------
    def send_command(self, params, region):
        if params.get("DocumentName") != "AWS-RunShellScript":
            raise SsmError("InvalidDocument", f"the rehearsal agent runs only AWS-RunShellScript, not {params.get('DocumentName')!r}")
        commands = (params.get("Parameters") or {}).get("commands")
        if not commands:
            raise SsmError("InvalidParameters", "the commands parameter is required")
        ids = params.get("InstanceIds") or []
        if not ids:
            raise SsmError("InvalidInstanceId", "no InstanceIds given (the rehearsal agent does not resolve Targets)")
        bad = [i for i in ids if (h := self.hosts.get(i)) is None or not self.registered(h)]
        if bad:
            raise SsmError("InvalidInstanceId", f"Instances {bad} not in a valid state for account")
        try:
            command = Command(params, region)
        except (KeyError, ValueError) as e:
            raise SsmError("InvalidParameters", f"invalid SendCommand parameters: {e}")
        with self.lock:
            self.commands[command.id] = command
        for invocation in command.invocations.values():
            threading.Thread(target=self._run, args=(invocation,), daemon=True).start()
        return {"Command": command.describe()}

    def _find(self, command_id):
        with self.lock:
            command = self.commands.get(command_id)
        if command is None:
            raise SsmError("InvalidCommandId", f"command {command_id} does not exist")
        return command

    def get_command_invocation(self, params):
        with self.lock:
            command = self.commands.get(params.get("CommandId", ""))
        invocation = command and command.invocations.get(params.get("InstanceId", ""))
        if invocation is None:
            raise SsmError("InvocationDoesNotExist", "")
        c = command
        out = {
            "CommandId": c.id,
            "InstanceId": invocation.instance_id,
            "Comment": c.comment,
            "DocumentName": c.document,
            "DocumentVersion": "1",
            "PluginName": "aws:runShellScript",
            "ResponseCode": invocation.response_code,
            "Status": invocation.status,
            "StatusDetails": invocation.details,
            "StandardOutputContent": invocation.stdout[:API_OUTPUT_LIMIT],
            "StandardErrorContent": invocation.stderr[:API_OUTPUT_LIMIT],
            "StandardOutputUrl": c.output_url(invocation.instance_id, "stdout") if c.bucket else "",
            "StandardErrorUrl": c.output_url(invocation.instance_id, "stderr") if c.bucket else "",
            "CloudWatchOutputConfig": {"CloudWatchOutputEnabled": False},
        }
        if invocation.started:
            out["ExecutionStartDateTime"] = _iso(invocation.started)
            end = invocation.finished or time.time()
            out["ExecutionElapsedTime"] = _duration(end - invocation.started)
        if invocation.finished:
            out["ExecutionEndDateTime"] = _iso(invocation.finished)
        return out

    def list_command_invocations(self, params):
        with self.lock:
            commands = list(self.commands.values())
        if params.get("CommandId"):
            commands = [self._find(params["CommandId"])]
        details = bool(params.get("Details"))
        out = []
        for c in commands:
            for invocation in c.invocations.values():
                if params.get("InstanceId") and invocation.instance_id != params["InstanceId"]:
                    continue
                item = {
                    "CommandId": c.id,
                    "InstanceId": invocation.instance_id,
                    "InstanceName": "",
                    "Comment": c.comment,
                    "DocumentName": c.document,
                    "DocumentVersion": "1",
                    "RequestedDateTime": c.requested,
                    "Status": invocation.status,
                    "StatusDetails": invocation.details,
                    "TraceOutput": "",
                    "StandardOutputUrl": c.output_url(invocation.instance_id, "stdout") if c.bucket else "",
                    "StandardErrorUrl": c.output_url(invocation.instance_id, "stderr") if c.bucket else "",
                    "CommandPlugins": [invocation.plugin(LIST_OUTPUT_LIMIT)] if details else [],
                    "ServiceRole": "",
                    "NotificationConfig": {},
                    "CloudWatchOutputConfig": {"CloudWatchOutputEnabled": False},
                }
                out.append(item)
        return {"CommandInvocations": out}

    def list_commands(self, params):
        """ListCommands as SSM answers it: by CommandId, or every command sent to InstanceId
        (all when neither), newest first, with the InvokedAfter / InvokedBefore filters
        (ISO 8601). One page: the rig never holds more than SSM's first page."""
        with self.lock:
            commands = list(self.commands.values())
        if params.get("CommandId"):
            commands = [self._find(params["CommandId"])]
        elif params.get("InstanceId"):
            commands = [c for c in commands if params["InstanceId"] in c.instance_ids]
        for f in params.get("Filters") or []:
            key, value = f.get("key") or f.get("Key"), f.get("value") or f.get("Value")
            if key in ("InvokedAfter", "InvokedBefore"):
                when = _parse_iso(value)
                if key == "InvokedAfter":
                    commands = [c for c in commands if c.requested >= when]
                else:
                    commands = [c for c in commands if c.requested <= when]
        commands.sort(key=lambda c: c.requested, reverse=True)
        return {"Commands": [c.describe() for c in commands]}

    def cancel_command(self, params):
        command = self._find(params.get("CommandId", ""))
        ids = params.get("InstanceIds") or list(command.invocations)
        for instance_id in ids:
            invocation = command.invocations.get(instance_id)
            if invocation is None:
                continue
            with invocation.lock:
                if invocation.status in TERMINAL:
                    continue
                invocation.cancel_requested = True
                if invocation.status == "InProgress":
                    invocation.status, invocation.details = "Cancelling", "Cancelling"
                process = invocation.process
            if process is not None:
                _kill_group(process)
        return {}

    # -- the agent's work -----------------------------------------------------------
    def _run(self, invocation):
        command = invocation.command
        host = self.hosts.get(invocation.instance_id)
        deadline = command.requested + command.delivery_timeout
        while not (host.up and self.registered(host)):
            if invocation.cancel_requested:
                return self._finish(invocation, "Cancelled", "Cancelled")
            if time.time() >= deadline or self.stopping.is_set():
                return self._finish(invocation, "TimedOut", "DeliveryTimedOut")
            time.sleep(0.2)
        work = host.path("agent", "orchestration", command.id, "awsrunShellScript", "0.awsrunShellScript")
        os.makedirs(work, exist_ok=True)
        script = os.path.join(work, "_script.sh")
        with open(script, "w") as f:
            f.write("\n".join(command.parameters["commands"]) + "\n")
        os.chmod(script, 0o700)
        with invocation.lock:
            if invocation.cancel_requested:
                invocation.status, invocation.details = "Cancelled", "Cancelled"
                return self._finish(invocation, "Cancelled", "Cancelled")
            invocation.status, invocation.details = "InProgress", "InProgress"
            invocation.started = time.time()
            stdout = open(os.path.join(work, "stdout"), "wb")
            stderr = open(os.path.join(work, "stderr"), "wb")
            invocation.process = subprocess.Popen(
                ["sh", "-c", script], cwd=work, env=host.environment(),
                stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True)
        timed_out = False
        try:
            invocation.process.wait(timeout=command.execution_timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(invocation.process)
            invocation.process.wait()
        stdout.close()
        stderr.close()
        invocation.stdout = _read(os.path.join(work, "stdout"))
        invocation.stderr = _read(os.path.join(work, "stderr"))
        self._upload(invocation, work)
        rc = invocation.process.returncode
        if invocation.cancel_requested:
            return self._finish(invocation, "Cancelled", "Cancelled")
        if timed_out:
            return self._finish(invocation, "TimedOut", "ExecutionTimedOut")
        invocation.response_code = rc
        if rc == 0:
            return self._finish(invocation, "Success", "Success")
        return self._finish(invocation, "Failed", "Failed")

    def _finish(self, invocation, status, details):
        invocation.finished = time.time()
        invocation.set(status, details)

    def _upload(self, invocation, work):
        command = invocation.command
        if not command.bucket:
            return
        try:
            client = self.s3_client(command.region)
            for stream in ("stdout", "stderr"):
                with open(os.path.join(work, stream), "rb") as f:
                    client.put_object(Bucket=command.bucket, Key=command.output_key(invocation.instance_id, stream), Body=f.read())
        except Exception as e:  # SSM does not fail the command when the upload fails
            invocation.stderr += f"\n[rehearsal agent] could not upload output to s3://{command.bucket}: {e}\n"

    def shutdown(self):
        self.stopping.set()
        with self.lock:
            commands = list(self.commands.values())
        for c in commands:
            for invocation in c.invocations.values():
                if invocation.process is not None and invocation.process.poll() is None:
                    _kill_group(invocation.process)

    def handle(self, action, params, region):
        handlers = {
            "SendCommand": lambda: self.send_command(params, region),
            "GetCommandInvocation": lambda: self.get_command_invocation(params),
            "ListCommandInvocations": lambda: self.list_command_invocations(params),
            "ListCommands": lambda: self.list_commands(params),
            "CancelCommand": lambda: self.cancel_command(params),
            "DescribeInstanceInformation": lambda: self.describe_instance_information(params),
        }
        if action not in handlers:
            return None
        return handlers[action]()


ACTIONS = {"SendCommand", "GetCommandInvocation", "ListCommandInvocations", "ListCommands",
           "CancelCommand", "DescribeInstanceInformation"}


def _kill_group(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _read(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def _iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"


def _parse_iso(text):
    """Seconds since the epoch of an ISO 8601 time (`2026-12-06T21:00:00Z`, or with a
    fraction or an offset)."""
    import datetime
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _duration(seconds):
    s = int(seconds)
    return f"PT{s // 3600}H{(s % 3600) // 60}M{s % 60}.{int((seconds % 1) * 1000):03d}S"


def dumps(value):
    return json.dumps(value)
