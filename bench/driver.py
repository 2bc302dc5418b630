#!/usr/bin/env python3
"""Keyferry side-by-side benchmark driver (started by bench/run.sh).

Starts on loopback, in one run: `keyferry serve` (release build), `moto_server`, and the
trivial axum server `examples/ceiling.rs`; and the TLS pair: `ceiling-tls` (the same trivial
server behind the same rustls configuration as Keyferry's) and `keyferry-tls` (`keyferry serve
--tls-cert/--tls-key`), both loaded by wrk over https with keep-alive (one handshake per
connection), with a P-256 certificate made by openssl; signs each operation's request once per target with
botocore's SigV4 signer (valid for 5 minutes, so it is re-signed before every wrk run) and
replays it with wrk through a generated Lua script; interleaves targets and rounds; prints a
Markdown report (requests/s, p50/p99 latency, ratios, targets met or not) and writes JSON.

Everything is bounded: every wait has a deadline, every load run has a fixed duration, and all
servers listen on 127.0.0.1 only. Processes started here are stopped by their PID.
"""

import argparse
import base64
import concurrent.futures
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

TARGETS = ("ceiling", "keyferry", "keyferry-authz", "moto", "ceiling-tls", "keyferry-tls")
# The baseline each target's "vs ceiling" ratio is taken against.
BASELINE = {"keyferry-tls": "ceiling-tls"}
ACCESS_KEY = "AKIAKEYFERRYDEV00001"
SECRET_KEY = "keyferry-development-secret-not-for-production"
REGION = "us-east-1"
CT = "application/x-amz-json-1.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64(data):
    return base64.b64encode(data).decode()


# ---------------------------------------------------------------- signing and raw requests


def signed(port, op, body_obj, creds=None):
    """A SigV4-signed KMS request for 127.0.0.1:port: (body bytes, ordered header list)."""
    akid, secret = creds or (ACCESS_KEY, SECRET_KEY)
    body = json.dumps(body_obj, separators=(",", ":")).encode()
    req = AWSRequest(
        method="POST",
        url=f"http://127.0.0.1:{port}/",
        data=body,
        headers={"Content-Type": CT, "X-Amz-Target": f"TrentService.{op}"},
    )
    SigV4Auth(Credentials(akid, secret), "kms", REGION).add_auth(req)
    headers = [(k, v) for k, v in req.headers.items()]
    headers.append(("Host", f"127.0.0.1:{port}"))
    return body, headers


def send(conn, body, headers):
    """One request on a keep-alive connection: (status, body bytes)."""
    conn.putrequest("POST", "/", skip_host=True, skip_accept_encoding=True)
    for k, v in headers:
        conn.putheader(k, v)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    return resp.status, resp.read()


def call(port, op, body_obj, timeout=30):
    body, headers = signed(port, op, body_obj)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        status, data = send(conn, body, headers)
    finally:
        conn.close()
    if status != 200:
        raise RuntimeError(f"{op} on port {port}: HTTP {status}: {data[:300]!r}")
    return json.loads(data) if data else {}


# ---------------------------------------------------------------- processes


class Proc:
    def __init__(self, name, argv, ready_pattern=None, env=None, cwd=None):
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(
            argv, stdout=subprocess.PIPE if ready_pattern else self.log, stderr=self.log,
            env=env, cwd=cwd, text=True,
        )
        self.ready_pattern = ready_pattern

    @property
    def pid(self):
        return self.p.pid

    def wait_line(self, timeout=30):
        """Wait for the ready line on stdout (bounded; the pipe is then drained to the log)."""
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.p.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = self.p.stdout.readline()
            if not line:
                break
            if re.search(self.ready_pattern, line):
                return line.strip()
        raise RuntimeError(f"{self.name} did not print {self.ready_pattern!r} in {timeout}s (log {self.log.name})")

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=10)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tree_pids(pid):
    """pid and its descendants (moto_server may run as a child of a pyenv shim)."""
    out = [pid]
    try:
        kids = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, timeout=5)
        for k in kids.stdout.split():
            out += tree_pids(int(k))
    except (subprocess.TimeoutExpired, ValueError):
        pass
    return out


def wait_idle(pid, quiet_ticks=3, window=1.0, timeout=180):
    """Wait until the process used < quiet_ticks of CPU over `window` seconds (e.g. pool filled)."""
    deadline = time.monotonic() + timeout
    prev = cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(window)
        cur = cpu_ticks(pid)
        if cur - prev < quiet_ticks:
            return True
        prev = cur
    log(f"pid {pid} still busy after {timeout}s")
    return False


# ---------------------------------------------------------------- wrk


LUA = """-- generated by bench/driver.py: replays one fixed, pre-signed request
{HEAD}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d,\\"max_us\\":%d}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def lua_script(path, requests):
    """One request: wrk's static request. Several: a request() that cycles through them."""
    if len(requests) == 1:
        body, headers = requests[0]
        hdr = "\n".join(f'wrk.headers["{k}"] = [==[{v}]==]' for k, v in headers)
        head = f'wrk.method = "POST"\nwrk.path = "/"\nwrk.body = [==[{body.decode()}]==]\n{hdr}\n'
    else:
        items = []
        for body, headers in requests:
            hdr = ", ".join(f'["{k}"] = [==[{v}]==]' for k, v in headers)
            items.append(f'  wrk.format("POST", "/", {{{hdr}}}, [==[{body.decode()}]==]),')
        head = ("local reqs = {\n" + "\n".join(items) + "\n}\nlocal i = 0\n"
                "request = function()\n  i = i % #reqs + 1\n  return reqs[i]\nend\n")
    with open(path, "w") as f:
        f.write(LUA.replace("{HEAD}", head))


def run_wrk(args, workdir, name, port, op, body_obj, connections=None, threads=None,
            duration=None, timeout_s=5, watch_pid=None, creds=None):
    """body_obj: one request body, or a list of bodies to cycle through."""
    objs = body_obj if isinstance(body_obj, list) else [body_obj]
    # Fresh signatures per run: a signed request is valid for 5 minutes.
    requests = [signed(port, op, o, creds) for o in objs]
    script = os.path.join(workdir, f"{name}-{op}.lua")
    lua_script(script, requests)
    c = connections or args.connections
    t = threads or args.threads
    d = duration or args.duration
    scheme = "https" if name.endswith("-tls") else "http"  # wrk keeps TLS connections alive too
    argv = ["wrk", "-t", str(t), "-c", str(c), "-d", f"{d}s", "--timeout", f"{timeout_s}s",
            "-s", script, f"{scheme}://127.0.0.1:{port}/"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    deadline = time.monotonic() + d + timeout_s + 30
    while p.poll() is None and time.monotonic() < deadline:
        if watch_pid:
            try:
                peak = max(peak, rss_kib(watch_pid))
            except OSError:
                pass
        time.sleep(0.2)
    if p.poll() is None:
        p.kill()
    out = p.communicate(timeout=10)[0]
    m = re.search(r"WRKJSON (\{.*\})", out)
    if not m:
        raise RuntimeError(f"wrk gave no result for {name} {op}:\n{out}")
    r = json.loads(m.group(1))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["errors"] = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    r["peak_rss_kib"] = peak
    log(f"{op:<22} {name:<12} {r['rps']:>10.0f} req/s  p50 {r['p50_us']/1000:.2f} ms  "
        f"p99 {r['p99_us']/1000:.2f} ms  errors {r['errors']}")
    return r


# ---------------------------------------------------------------- phases


# The authorization + audit instance ("keyferry-authz"): an identities file whose account root
# holds the benchmark's access key (it creates the keys, which get the default key policy) and a
# user whose IAM policy allows the operations (it signs the load: the default key policy delegates
# to the account, so every request evaluates the key policy and the user's identity policy), and
# the audit trail written to a file.
AUTHZ_USER = ("AKIABENCHUSER0000001", "bench-user-secret-not-for-production")
IDENTITIES = f"""
[[accounts]]
id = "111122223333"
root = {{ access_key_id = "{ACCESS_KEY}", secret_access_key = "{SECRET_KEY}" }}

[[accounts.users]]
name = "bench"
access_keys = [{{ access_key_id = "{AUTHZ_USER[0]}", secret_access_key = "{AUTHZ_USER[1]}" }}]
policies = ['''{{"Version":"2012-10-17","Statement":[
  {{"Sid":"UseKeys","Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt","kms:GenerateDataKey","kms:Sign"],
    "Resource":"arn:aws:kms:us-east-1:111122223333:key/*"}},
  {{"Sid":"NoDeletion","Effect":"Deny","Action":"kms:ScheduleKeyDeletion","Resource":"*"}}]}}''']
"""


def start_keyferry(args, data_dir, port, pool_size=None, authz_dir=None, tls=None):
    argv = [args.keyferry, "serve", "--listen", f"127.0.0.1:{port}", "--data", data_dir]
    if tls is not None:
        argv += ["--tls-cert", tls[0], "--tls-key", tls[1]]
    if pool_size is not None:
        argv += ["--wrapping-pool-size", str(pool_size)]
    if authz_dir is not None:
        os.makedirs(authz_dir, exist_ok=True)
        ids = os.path.join(authz_dir, "identities.toml")
        fd = os.open(ids, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(IDENTITIES)
        argv += ["--identities", ids, "--audit-log", os.path.join(authz_dir, "audit.jsonl")]
    env = dict(os.environ)
    env.pop("KEYFERRY_ACCESS_KEY_ID", None)
    env.pop("KEYFERRY_SECRET_ACCESS_KEY", None)
    return Proc("keyferry", argv, ready_pattern=r"listening on", env=env)


def measure_startup(args, base):
    """Time from process start to the first signed ListKeys answered 200 (fresh data dir each)."""
    times, idle = [], None
    for i in range(args.startups):
        port = free_port()
        data = os.path.join(base, f"startup-{i}")
        t0 = time.monotonic()
        proc = start_keyferry(args, data, port)
        try:
            # Drain the ready line in the background: poll the socket independently of it.
            elapsed = None
            deadline = t0 + 10
            while time.monotonic() < deadline:
                try:
                    body, headers = signed(port, "ListKeys", {})
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    try:
                        status, _ = send(conn, body, headers)
                    finally:
                        conn.close()
                    if status == 200:
                        elapsed = time.monotonic() - t0
                        break
                except OSError:
                    pass
                time.sleep(0.002)
            if elapsed is None:
                raise RuntimeError("keyferry never answered ListKeys within 10 s")
            times.append(elapsed * 1000)
            if i == 0:
                wait_idle(proc.pid)  # the default wrapping-key pool has filled
                idle = rss_kib(proc.pid)
        finally:
            proc.stop()
    log(f"first answer after start: {[round(t, 1) for t in times]} ms; idle RSS {idle} KiB")
    return {"first_answer_ms": times, "idle_rss_kib_default": idle}


def make_tls_cert(base):
    """A self-signed P-256 certificate for 127.0.0.1 (its own CA): (cert.pem, key.pem)."""
    cert, key = os.path.join(base, "tls-cert.pem"), os.path.join(base, "tls-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def setup_keys(port, with_import, ca=None):
    """Keys for the load; `ca`: the server speaks TLS with a certificate issued by this CA file."""
    kms = boto3.client(
        "kms", endpoint_url=f"{'https' if ca else 'http'}://127.0.0.1:{port}", region_name=REGION,
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"max_attempts": 1}), verify=ca if ca else None,
    )
    sym = kms.create_key(Description="bench symmetric")["KeyMetadata"]["KeyId"]
    ecc = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    plaintext = os.urandom(32)
    blob = kms.encrypt(KeyId=sym, Plaintext=plaintext)["CiphertextBlob"]
    keys = {"sym": sym, "ecc": ecc, "plaintext": plaintext, "blob": blob, "client": kms}
    if with_import:
        keys["ext"] = kms.create_key(Origin="EXTERNAL", Description="bench import")["KeyMetadata"]["KeyId"]
    return keys


def op_bodies(keys):
    return {
        "Encrypt": {"KeyId": keys["sym"], "Plaintext": b64(keys["plaintext"])},
        "Decrypt": {"CiphertextBlob": b64(keys["blob"])},
        "GenerateDataKey": {"KeyId": keys["sym"], "KeySpec": "AES_256"},
        "Sign": {"KeyId": keys["ecc"], "Message": b64(os.urandom(32)), "MessageType": "RAW",
                 "SigningAlgorithm": "ECDSA_SHA_256"},
    }


def wrap_for_import(kms, key_id):
    p = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                      WrappingKeySpec="RSA_4096")
    pub = serialization.load_der_public_key(p["PublicKey"])
    material = os.urandom(32)
    enc = pub.encrypt(material, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    return {"KeyId": key_id, "ImportToken": b64(p["ImportToken"]), "EncryptedKeyMaterial": b64(enc),
            "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}


def gpfi_warm(port, key_id, n):
    """n sequential GetParametersForImport on one keep-alive connection; latencies in µs."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body, headers = signed(port, "GetParametersForImport",
                           {"KeyId": key_id, "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
                            "WrappingKeySpec": "RSA_4096"})
    lat = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            status, data = send(conn, body, headers)
            lat.append((time.perf_counter() - t) * 1e6)
            if status != 200:
                raise RuntimeError(f"GetParametersForImport: HTTP {status} {data[:200]!r}")
    finally:
        conn.close()
    return lat


def distinct_imports(port, prepared, concurrency):
    """Each prepared import (own token + material) once, `concurrency` at a time."""
    reqs = [signed(port, "ImportKeyMaterial", b) for b in prepared]

    def one(req):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            t = time.perf_counter()
            status, data = send(conn, *req)
            return status, (time.perf_counter() - t) * 1e6
        finally:
            conn.close()

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as ex:
        results = list(ex.map(one, reqs))
    wall = time.perf_counter() - t0
    errors = sum(1 for s, _ in results if s != 200)
    lat = sorted(l for _, l in results)
    return {"n": len(reqs), "wall_s": wall, "rps": len(reqs) / wall, "errors": errors,
            "p50_us": pct(lat, 50), "p99_us": pct(lat, 99)}


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def openssl_speed():
    out = {}
    for label, extra in (("single", []), ("multi2", ["-multi", "2"])):
        r = subprocess.run(["openssl", "speed", "-seconds", "3"] + extra + ["rsa4096"],
                           capture_output=True, text=True, timeout=120)
        m = re.search(r"^rsa 4096 bits\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", r.stdout, re.M)
        out[label] = float(m.group(1)) if m else None
    log(f"openssl speed rsa4096 sign/s: {out}")
    return out


def bulk_import(args, base, port, kf_pid):
    """`keyferry import --material DIR` of N symmetric keys vs bench/seed_procedure.sh (the AWS
    documentation's steps with the aws CLI and openssl), same material, same server."""
    n = args.bulk_keys
    mat = os.path.join(base, "bulk-material")
    os.makedirs(mat, exist_ok=True)
    for i in range(n):
        with open(os.path.join(mat, f"key{i:03d}.bin"), "wb") as f:
            f.write(os.urandom(32))
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
               AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_PAGER="")
    t = time.monotonic()
    r = subprocess.run([args.keyferry, "import", "--material", mat, "--endpoint-url", f"http://127.0.0.1:{port}",
                        "--region", REGION, "--output", "json"], env=env, capture_output=True, text=True,
                       timeout=1800)
    kf_s = time.monotonic() - t
    if r.returncode != 0:
        log(f"keyferry import failed ({r.returncode}): {r.stderr[-800:]}")
    log(f"keyferry import of {n} keys: {kf_s:.1f} s")
    wait_idle(kf_pid, timeout=300)  # the wrapping-key pool refills before the baseline starts
    seed = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seed_procedure.sh")
    t = time.monotonic()
    s = subprocess.run(["bash", seed, mat, os.path.join(base, "seed-work")], env=env, capture_output=True,
                       text=True, timeout=3600)
    seed_s = time.monotonic() - t
    if s.returncode != 0:
        log(f"seed procedure failed ({s.returncode}): {s.stderr[-800:]}")
    log(f"seed procedure of {n} keys: {seed_s:.1f} s")
    # Both produced n usable keys: keyferry's own report (every key verified with RSA_4096
    # wrapping), then an independent look at every key from both runs through boto3.
    try:
        outcomes = json.loads(r.stdout)
    except ValueError:
        outcomes = []
    kf_keys = [o["KeyId"] for o in outcomes
               if o.get("Verified") and o.get("WrappingKeySpec") == "RSA_4096" and o.get("KeyId")]
    seed_keys = [line.strip() for line in s.stdout.splitlines() if line.strip()]
    kms = boto3.client("kms", endpoint_url=f"http://127.0.0.1:{port}", region_name=REGION,
                       aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    usable = {"keyferry": 0, "seed": 0}
    for who, keys in (("keyferry", kf_keys), ("seed", seed_keys)):
        for k in keys:
            md = kms.describe_key(KeyId=k)["KeyMetadata"]
            if md["KeyState"] == "Enabled" and md["Origin"] == "EXTERNAL":
                usable[who] += 1
    log(f"usable imported keys: keyferry {usable['keyferry']}/{n}, seed procedure {usable['seed']}/{n}")
    # The target: the same batch into a fresh server with default flags (its pool adapts to
    # demand; issue 12 item 8), started and idle before the import.
    dport = free_port()
    dflt = start_keyferry(args, os.path.join(base, "default-pool"), dport)
    try:
        dflt.wait_line()
        wait_idle(dflt.pid)
        t = time.monotonic()
        d = subprocess.run([args.keyferry, "import", "--material", mat, "--endpoint-url",
                            f"http://127.0.0.1:{dport}", "--region", REGION, "--output", "json"],
                           env=dict(env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{dport}"),
                           capture_output=True, text=True, timeout=1800)
        default_s = time.monotonic() - t
    finally:
        dflt.stop()
    try:
        default_ok = sum(1 for o in json.loads(d.stdout) if o.get("Verified"))
    except ValueError:
        default_ok = 0
    log(f"keyferry import of {n} keys, default pool: {default_s:.1f} s, {default_ok} verified")
    return {"default_pool_s": default_s, "default_pool_rc": d.returncode, "default_pool_verified": default_ok,"n": n, "keyferry_s": kf_s, "keyferry_rc": r.returncode, "seed_s": seed_s,
            "seed_rc": s.returncode, "speedup": seed_s / kf_s if kf_s else 0.0,
            "default_speedup": seed_s / default_s if default_s else 0.0,
            "keyferry_usable": usable["keyferry"], "seed_usable": usable["seed"]}


def keyferry_has_import(args):
    r = subprocess.run([args.keyferry, "--help"], capture_output=True, text=True, timeout=10)
    return re.search(r"^\s+import\b", r.stdout, re.M) is not None


# ---------------------------------------------------------------- report


def med(rs, key):
    return statistics.median(r[key] for r in rs)


def fmt_ms(us):
    return f"{us / 1000:.2f}"


def report(res):
    L = []
    m = res["machine"]
    L.append(f"Run {res['date']} on {m['cpu']} ({m['nproc']} cores), {m['mem_gib']} GiB RAM, {m['os']}; "
             f"wrk {res['params']['threads']} threads × {res['params']['connections']} connections, "
             f"{res['params']['duration']} s per run, {res['params']['rounds']} interleaved rounds (medians).")
    L.append("")
    L.append("| Operation | Target | req/s | p50 ms | p99 ms | errors | vs ceiling | vs moto |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for op, per in res["ops"].items():
        moto = med(per["moto"], "rps") if per.get("moto") else None
        for tgt in TARGETS:
            rs = per.get(tgt)
            if not rs:
                continue
            base_tgt = BASELINE.get(tgt, "ceiling")
            ceil = med(per[base_tgt], "rps") if per.get(base_tgt) else None
            rps = med(rs, "rps")
            errs = sum(r["errors"] for r in rs)
            vc = (f"{rps / ceil * 100:.0f} %{' of ceiling-tls' if base_tgt != 'ceiling' else ''}"
                  if ceil and not tgt.startswith("ceiling") else "")
            vm = f"{rps / moto:.0f}×" if moto and tgt.startswith("keyferry") else ""
            L.append(f"| {op} | {tgt} | {rps:,.0f} | {fmt_ms(med(rs, 'p50_us'))} | {fmt_ms(med(rs, 'p99_us'))} "
                     f"| {errs} | {vc} | {vm} |")
    imp = res.get("import", {})
    if imp:
        w = imp["gpfi_warm"]
        L.append(f"| GetParametersForImport RSA_4096, pool warm ({w['n']} sequential, 1 conn) | keyferry | "
                 f"{w['rps']:,.0f} | {fmt_ms(w['p50_us'])} | {fmt_ms(w['p99_us'])} | 0 | | moto: not implemented |")
        rs = imp["gpfi_drained"]
        L.append(f"| GetParametersForImport RSA_4096, pool drained ({rs[0]['conns']} conns) | keyferry | "
                 f"{med(rs, 'rps'):,.1f} | {fmt_ms(med(rs, 'p50_us'))} | {fmt_ms(med(rs, 'p99_us'))} | "
                 f"{sum(r['errors'] for r in rs)} | | moto: not implemented |")
        rs = imp["replay"]
        L.append(f"| ImportKeyMaterial RSA_4096 OAEP-256, valid imports into {rs[0]['keys']} keys replayed "
                 f"({rs[0]['conns']} conns) | keyferry | "
                 f"{med(rs, 'rps'):,.0f} | {fmt_ms(med(rs, 'p50_us'))} | {fmt_ms(med(rs, 'p99_us'))} | "
                 f"{sum(r['errors'] for r in rs)} | | moto: not implemented |")
        r = imp["replay_one_key"]
        L.append(f"| ImportKeyMaterial, one import into one key replayed ({r['conns']} conns) | keyferry | "
                 f"{r['rps']:,.0f} | {fmt_ms(r['p50_us'])} | {fmt_ms(r['p99_us'])} | {r['errors']} | | |")
        d = imp["distinct"]
        L.append(f"| ImportKeyMaterial, {d['n']} distinct prepared imports ({d['concurrency']} at a time) | keyferry | "
                 f"{d['rps']:,.0f} | {fmt_ms(d['p50_us'])} | {fmt_ms(d['p99_us'])} | {d['errors']} | | |")
    L.append("")
    o = res.get("openssl", {})
    st = res["startup"]
    L.append(f"- `openssl speed -seconds 3 rsa4096`: {o.get('single')} private ops/s on one core "
             f"({o.get('multi2')} with `-multi 2`).")
    if st:
        L.append(f"- First answer (signed ListKeys 200) after process start, fresh data directory: "
                 f"{', '.join(f'{t:.0f}' for t in st['first_answer_ms'])} ms (median {statistics.median(st['first_answer_ms']):.0f} ms).")
    L.append(f"- Resident memory: idle {st['idle_rss_kib_default'] / 1024 if st else float('nan'):.1f} MB (default flags, pool filled); "
             f"main instance idle {res['rss']['idle_kib'] / 1024:.1f} MB, peak under load {res['rss']['peak_kib'] / 1024:.1f} MB.")
    if res.get("audit"):
        a = res["audit"]
        L.append(f"- keyferry-authz (identities file, user with an IAM policy, default key policy, audit trail "
                 f"to a file): {a['events']:,} audit events ({a['bytes'] / 1e6:.1f} MB) for "
                 f"{a['requests']:,} requests wrk counted.")
    L.append(f"- Bulk import: {res['bulk_import']}")
    b = res.get("bulk")
    L.append("")
    L.append("Targets:")
    for t in res["targets"]:
        L.append(f"- [{'x' if t['met'] else ' '}] {t['name']}: {t['detail']}")
    return "\n".join(L)


def targets(res):
    out = []
    for op in ("Encrypt", "Decrypt", "GenerateDataKey"):
        per = res["ops"].get(op)
        if not per:
            continue
        if per.get("keyferry-tls") and per.get("ceiling-tls"):
            kt, ct = med(per["keyferry-tls"], "rps"), med(per["ceiling-tls"], "rps")
            terrs = sum(r["errors"] for r in per["keyferry-tls"])
            out.append({"name": f"{op} over TLS (keep-alive) ≥ 50 % of the TLS ceiling, no errors",
                        "met": kt >= 0.5 * ct and terrs == 0,
                        "detail": f"{kt / ct * 100:.0f} % ({kt:,.0f} vs {ct:,.0f} req/s), {terrs} errors"})
        if not per.get("keyferry"):
            continue
        k = med(per["keyferry"], "rps")
        c = med(per["ceiling"], "rps")
        mo = med(per["moto"], "rps") if per.get("moto") else None
        errs = sum(r["errors"] for r in per["keyferry"])
        out.append({"name": f"{op} ≥ 50 % of ceiling", "met": k >= 0.5 * c, "detail": f"{k / c * 100:.0f} %"})
        if mo:
            out.append({"name": f"{op} ≥ 50× moto_server", "met": k >= 50 * mo, "detail": f"{k / mo:.0f}×"})
        out.append({"name": f"{op} no errors at {res['params']['connections']} connections", "met": errs == 0,
                    "detail": f"{errs} errors"})
        if per.get("keyferry-authz"):
            a = med(per["keyferry-authz"], "rps")
            aerrs = sum(r["errors"] for r in per["keyferry-authz"])
            out.append({"name": f"{op} with authorization and audit on ≥ 50 % of ceiling, no errors",
                        "met": a >= 0.5 * c and aerrs == 0,
                        "detail": f"{a / c * 100:.0f} % ({a / k * 100:.0f} % of authorization off), {aerrs} errors"})
    imp = res.get("import")
    o = res.get("openssl", {})
    if imp and o.get("single"):
        best = med(imp["replay"], "rps")
        out.append({"name": "ImportKeyMaterial ≥ 80 % of openssl rsa4096 private ops/s",
                    "met": best >= 0.8 * o["single"],
                    "detail": f"replayed {best:.0f}/s, distinct {imp['distinct']['rps']:.0f}/s vs openssl "
                              f"{o['single']:.0f}/s one core ({best / o['single'] * 100:.0f} % / "
                              f"{imp['distinct']['rps'] / o['single'] * 100:.0f} %)"})
    if imp:
        p99 = imp["gpfi_warm"]["p99_us"] / 1000
        out.append({"name": "GetParametersForImport warm pool p99 < 5 ms", "met": p99 < 5, "detail": f"{p99:.2f} ms"})
    if res["startup"]:
        idle = res["startup"]["idle_rss_kib_default"] / 1024
        out.append({"name": "idle memory < 30 MB", "met": idle < 30, "detail": f"{idle:.1f} MB"})
        fa = statistics.median(res["startup"]["first_answer_ms"])
        out.append({"name": "first answer ≤ 200 ms after start", "met": fa <= 200, "detail": f"{fa:.0f} ms (median)"})
    out.append({"name": "`keyferry import` of 50 keys into a default server ≥ 20× the aws CLI + openssl procedure",
                "met": bool(res.get("bulk_import_met")), "detail": res["bulk_import"]})
    return out


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / 1024 / 1024
    return {"cpu": cpu, "nproc": os.cpu_count(), "mem_gib": round(mem, 1),
            "os": f"{platform.system()} {platform.release()}"}


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keyferry", required=True, help="path to the release keyferry binary")
    ap.add_argument("--ceiling", required=True, help="path to the release ceiling example")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pool-size", type=int, default=64, help="--wrapping-pool-size of the main instance")
    ap.add_argument("--startups", type=int, default=3)
    ap.add_argument("--distinct-imports", type=int, default=100)
    ap.add_argument("--import-keys", type=int, default=16, help="keys the ImportKeyMaterial replay cycles through")
    ap.add_argument("--import-connections", type=int, default=8)
    ap.add_argument("--ops", default="Encrypt,Decrypt,GenerateDataKey,Sign")
    ap.add_argument("--targets", default=",".join(TARGETS),
                    help="servers to load (ceiling is always started: the ratios need it)")
    ap.add_argument("--skip-startup", action="store_true", help="do not measure start-up time and idle memory")
    ap.add_argument("--skip-import", action="store_true")
    ap.add_argument("--bulk-keys", type=int, default=50, help="keys for `keyferry import` vs the seed procedure")
    ap.add_argument("--json", default=None, help="write raw results here")
    ap.add_argument("--markdown", default=None, help="write the report here too")
    args = ap.parse_args()
    chosen = args.targets.split(",")
    # The ceiling is always started (the ratios need it), and ceiling-tls with keyferry-tls.
    selected = [t for t in TARGETS if t in chosen or t == "ceiling"
                or (t == "ceiling-tls" and "keyferry-tls" in chosen)]
    for tool in ("wrk", "openssl") + (("moto_server",) if "moto" in selected else ()):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is not on PATH")

    base = tempfile.mkdtemp(prefix="keyferry-bench-")
    res = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": machine(),
           "params": {k: getattr(args, k) for k in ("rounds", "duration", "connections", "threads", "pool_size")},
           "ops": {}}
    log(f"work dir {base}")
    res["startup"] = measure_startup(args, base) if not args.skip_startup else None

    procs = []
    try:
        kport, mport, cport = free_port(), free_port(), free_port()
        kf = start_keyferry(args, os.path.join(base, "main"), kport, pool_size=args.pool_size)
        procs.append(kf)
        kf.wait_line()
        ceiling = Proc("ceiling", [args.ceiling, f"127.0.0.1:{cport}"], ready_pattern=r"listening on")
        procs.append(ceiling)
        ceiling.wait_line()
        if "moto" in selected:
            moto = Proc("moto", ["moto_server", "-H", "127.0.0.1", "-p", str(mport)])
            procs.append(moto)
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", mport), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("moto_server did not start")
                    time.sleep(0.2)

        kkeys = setup_keys(kport, with_import=True)
        bodies = {"keyferry": op_bodies(kkeys)}
        bodies["ceiling"] = bodies["keyferry"]  # the same request bytes, signed for the ceiling's host
        ports = {"keyferry": kport, "moto": mport, "ceiling": cport}
        creds = {}
        if "moto" in selected:
            bodies["moto"] = op_bodies(setup_keys(mport, with_import=False))
        if "keyferry-authz" in selected:
            aport = free_port()
            authz_dir = os.path.join(base, "authz")
            kfa = start_keyferry(args, os.path.join(base, "authz-data"), aport, authz_dir=authz_dir)
            procs.append(kfa)
            kfa.wait_line()
            bodies["keyferry-authz"] = op_bodies(setup_keys(aport, with_import=False))
            ports["keyferry-authz"] = aport
            creds["keyferry-authz"] = AUTHZ_USER
            wait_idle(kfa.pid, timeout=300)
        if "ceiling-tls" in selected or "keyferry-tls" in selected:
            tls = make_tls_cert(base)
        if "ceiling-tls" in selected:
            ctport = free_port()
            ctls = Proc("ceiling-tls", [args.ceiling, f"127.0.0.1:{ctport}", "--tls-cert", tls[0],
                                        "--tls-key", tls[1]], ready_pattern=r"listening on https://")
            procs.append(ctls)
            ctls.wait_line()
            ports["ceiling-tls"] = ctport
            bodies["ceiling-tls"] = bodies["keyferry"]
        if "keyferry-tls" in selected:
            ktport = free_port()
            # No wrapping-key pool: the operations measured here never use it.
            kft = start_keyferry(args, os.path.join(base, "tls-data"), ktport, pool_size=0, tls=tls)
            procs.append(kft)
            kft.wait_line()
            ports["keyferry-tls"] = ktport
            bodies["keyferry-tls"] = op_bodies(setup_keys(ktport, with_import=False, ca=tls[0]))
            wait_idle(kft.pid, timeout=300)
        log("waiting for the wrapping-key pool to fill (keyferry idle)")
        wait_idle(kf.pid, timeout=300)
        res["rss"] = {"idle_kib": rss_kib(kf.pid), "peak_kib": 0}

        ops = [o for o in args.ops.split(",") if o]
        order = [t for t in TARGETS if t in selected]
        for rnd in range(args.rounds):
            for op in ops:
                n = len(order)
                rot = order[rnd % n:] + order[:rnd % n]  # interleave and rotate the order per round
                for tgt in rot:
                    watch = kf.pid if tgt == "keyferry" else None
                    r = run_wrk(args, base, tgt, ports[tgt], op, bodies[tgt][op], watch_pid=watch,
                                creds=creds.get(tgt))
                    res["ops"].setdefault(op, {}).setdefault(tgt, []).append(r)
                    if watch:
                        res["rss"]["peak_kib"] = max(res["rss"]["peak_kib"], r["peak_rss_kib"])

        if "keyferry-authz" in selected:
            log_path = os.path.join(base, "authz", "audit.jsonl")
            with open(log_path, "rb") as f:
                events = sum(1 for _ in f)
            res["audit"] = {"events": events, "bytes": os.path.getsize(log_path),
                            "requests": sum(r["requests"] for per in res["ops"].values()
                                            for r in per.get("keyferry-authz", []))}
            log(f"audit trail: {events} events for {res['audit']['requests']} requests")

        if not args.skip_import:
            imp = {}
            n = max(1, args.pool_size - 2)
            # A latency measurement on a quiet machine: the previous wrk run's servers (moto above
            # all) may still be working off their backlog.
            for p in procs:
                wait_idle(p.pid, timeout=300)
            lat = sorted(gpfi_warm(kport, kkeys["ext"], n))
            imp["gpfi_warm"] = {"n": n, "p50_us": pct(lat, 50), "p99_us": pct(lat, 99), "max_us": lat[-1],
                                "rps": n / (sum(lat) / 1e6)}
            log(f"GetParametersForImport warm: p50 {pct(lat, 50) / 1000:.2f} ms p99 {pct(lat, 99) / 1000:.2f} ms")
            gp = {"KeyId": kkeys["ext"], "WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_4096"}
            imp["gpfi_drained"] = []
            for _ in range(args.rounds):
                r = run_wrk(args, base, "keyferry", kport, "GetParametersForImport", gp,
                            connections=2, threads=2, timeout_s=30)
                r["conns"] = 2
                imp["gpfi_drained"].append(r)
            log("waiting for the pool to refill")
            wait_idle(kf.pid, timeout=300)
            kms = kkeys["client"]
            # Replay: K EXTERNAL keys, each with one valid import done once; wrk cycles through
            # them (re-import of the same material into the same key is legitimate on Keyferry).
            log(f"preparing {args.import_keys} import keys for the replay")
            replay = []
            for _ in range(args.import_keys):
                kid = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
                body = wrap_for_import(kms, kid)
                call(kport, "ImportKeyMaterial", body)
                replay.append(body)
            wait_idle(kf.pid, timeout=300)
            imp["replay"] = []
            for _ in range(args.rounds):
                r = run_wrk(args, base, "keyferry", kport, "ImportKeyMaterial", replay,
                            connections=args.import_connections, watch_pid=kf.pid)
                r["conns"], r["keys"] = args.import_connections, len(replay)
                imp["replay"].append(r)
            # The same request into ONE key from all connections: concurrent updates of one key.
            r = run_wrk(args, base, "keyferry", kport, "ImportKeyMaterial", replay[0], watch_pid=kf.pid)
            r["conns"], r["keys"] = args.connections, 1
            imp["replay_one_key"] = r
            # Distinct imports: one EXTERNAL key each with its own token and material.
            log(f"preparing {args.distinct_imports} distinct imports")
            prepared = []
            for _ in range(args.distinct_imports):
                kid = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
                prepared.append(wrap_for_import(kms, kid))
            wait_idle(kf.pid, timeout=300)
            d = distinct_imports(kport, prepared, concurrency=8)
            d["concurrency"] = 8
            imp["distinct"] = d
            log(f"distinct imports: {d['rps']:.0f}/s errors {d['errors']}")
            res["import"] = imp
            res["openssl"] = openssl_speed()
        else:
            res["openssl"] = {}

        if args.bulk_keys and keyferry_has_import(args):
            wait_idle(kf.pid, timeout=300)
            res["bulk"] = bulk_import(args, base, kport, kf.pid)
            b = res["bulk"]
            res["bulk_import"] = (f"{b['n']} keys into a default server: `keyferry import` {b['default_pool_s']:.2f} s "
                                  f"(exit {b['default_pool_rc']}, {b['default_pool_verified']} verified) vs aws CLI + "
                                  f"openssl procedure {b['seed_s']:.1f} s (exit {b['seed_rc']}): "
                                  f"{b['default_speedup']:.1f}× faster; into the main instance (pool of "
                                  f"{args.pool_size}): {b['keyferry_s']:.2f} s, {b['speedup']:.1f}×; keys Enabled "
                                  f"afterwards: {b['keyferry_usable']} and {b['seed_usable']} of {b['n']}")
            res["bulk_import_met"] = (b["default_pool_rc"] == 0 and b["seed_rc"] == 0
                                      and b["default_speedup"] >= 20 and b["default_pool_verified"] == b["n"]
                                      and b["keyferry_usable"] == b["n"] and b["seed_usable"] == b["n"])
        elif args.bulk_keys:
            res["bulk_import"] = "not measured: this keyferry binary has no `import` command"
            res["bulk_import_met"] = False
        else:
            res["bulk_import"] = "not measured (--bulk-keys 0)"
            res["bulk_import_met"] = False
    finally:
        for p in reversed(procs):
            p.stop()
        for p in procs:
            for line in open(p.log.name, errors="replace").read().splitlines()[-3:]:
                if "error" in line.lower():
                    log(f"{p.name}: {line}")

    res["targets"] = targets(res)
    text = report(res)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, default=str)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
