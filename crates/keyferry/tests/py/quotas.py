"""Request quotas against the real `keyferry serve`, with boto3.

`quotas.py aws`: the server runs with `--request-quotas aws` (CreateKey: 5 per second per
account and Region). A burst of CreateKey without retries is throttled with AWS's
ThrottlingException (HTTP 400, AWS's message); the same burst with boto3's standard retry mode
succeeds entirely, the retries absorbing the throttling. Other quotas are independent.

`quotas.py file`: the server runs with a quotas file (symmetric = 2, nothing else): Encrypt is
throttled past the shared symmetric quota, ListKeys never is.

`quotas.py off`: no `--request-quotas`: the same bursts are never throttled.
"""
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

EP = os.environ["KEYFERRY_ENDPOINT"]
MESSAGE = "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."
CHECKS = 0


def ok(cond, what):
    global CHECKS
    if not cond:
        print(f"FAILED: {what}")
        sys.exit(1)
    CHECKS += 1


def client(retries):
    return boto3.client(
        "kms",
        region_name="us-east-1",
        endpoint_url=EP,
        config=Config(retries=retries),
    )


def burst(kms, n, call):
    """n calls at once (16 in flight); (successes, throttling errors seen)."""
    def one(_):
        try:
            call(kms)
            return None
        except ClientError as e:
            if e.response["Error"]["Code"] != "ThrottlingException":
                raise
            return e

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, range(n)))
    throttled = [e for e in results if e is not None]
    return n - len(throttled), throttled


def create_key(kms):
    return kms.create_key(Description="quota test")


mode = sys.argv[1]
bare = client({"mode": "standard", "max_attempts": 1})
retrying = client({"mode": "standard", "max_attempts": 10})

if mode == "aws":
    done, throttled = burst(bare, 24, create_key)
    ok(throttled, f"24 CreateKey at once are throttled (done {done})")
    ok(done >= 5, f"the first five CreateKey pass (done {done})")
    e = throttled[0]
    ok(e.response["ResponseMetadata"]["HTTPStatusCode"] == 400, "HTTP 400")
    ok(e.response["Error"]["Message"] == MESSAGE, f"AWS's message: {e.response['Error']['Message']}")
    # Another quota (ListKeys: 100 per second) is not affected by the CreateKey bucket.
    done, throttled = burst(bare, 20, lambda k: k.list_keys(Limit=1))
    ok(not throttled and done == 20, "ListKeys has its own quota")
    # boto3's standard retries absorb the throttling: every call succeeds, some after retries.
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda _: create_key(retrying), range(24)))
    ok(all("KeyMetadata" in r for r in answers), "every CreateKey succeeded")
    retried = sum(r["ResponseMetadata"]["RetryAttempts"] for r in answers)
    ok(retried > 0, "the retrying client was throttled and retried")
    print(f"retries absorbed: {retried}")
elif mode == "file":
    key = bare.create_key()["KeyMetadata"]["KeyId"]
    done, throttled = burst(bare, 6, lambda k: k.encrypt(KeyId=key, Plaintext=b"x"))
    ok(throttled and done >= 2, f"Encrypt throttled past symmetric = 2 (done {done})")
    ok(throttled[0].response["Error"]["Message"] == MESSAGE, "AWS's message")
    done, throttled = burst(bare, 30, create_key)
    ok(not throttled, "CreateKey is not limited by this file")
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: retrying.encrypt(KeyId=key, Plaintext=b"x"), range(8)))
    ok(sum(r["ResponseMetadata"]["RetryAttempts"] for r in answers) > 0, "Encrypt retried and succeeded")
elif mode == "off":
    done, throttled = burst(bare, 30, create_key)
    ok(not throttled and done == 30, "no throttling without --request-quotas")
    key = bare.list_keys(Limit=1)["Keys"][0]["KeyId"]
    done, throttled = burst(bare, 50, lambda k: k.encrypt(KeyId=key, Plaintext=b"x"))
    ok(not throttled, "no throttling of Encrypt either")
else:
    ok(False, f"unknown mode {mode}")

print(f"{CHECKS} checks passed")
