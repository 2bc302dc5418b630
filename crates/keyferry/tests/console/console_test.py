"""Browser tests of the Keyferry web console: headless Debian chromium + chromium-driver driven by
selenium against the real `keyferry serve` (started by tests/console.rs). boto3 checks what the
console did through the public API; openssl wraps key material exactly as the seeds do.

usage: console_test.py SCENARIO   (env: KEYFERRY_ENDPOINT, AWS_* for boto3, SCREENSHOT_DIR,
                                   WORK_DIR; EXPIRED_TOKEN_ENDPOINT for the expired-token step)
"""

import base64
import json
import os
import re
import subprocess
import sys
import time
import zipfile

import boto3
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

ENDPOINT = os.environ["KEYFERRY_ENDPOINT"]
SHOTS = os.environ["SCREENSHOT_DIR"]
WORK = os.environ["WORK_DIR"]
AKID = os.environ["AWS_ACCESS_KEY_ID"]
SECRET = os.environ["AWS_SECRET_ACCESS_KEY"]
REGION = os.environ.get("AWS_REGION", "us-east-1")

kms = boto3.client("kms", endpoint_url=ENDPOINT, region_name=REGION)


def log(*a):
    print(*a, flush=True)


class Console:
    def __init__(self, scenario, width=1280, height=900):
        self.scenario = scenario
        self.step = 0
        self.downloads = os.path.join(WORK, "downloads")
        os.makedirs(self.downloads, exist_ok=True)
        os.makedirs(SHOTS, exist_ok=True)
        profile = os.path.join(WORK, "chromium-profile")
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for a in [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
        ]:
            opts.add_argument(a)
        opts.add_experimental_option(
            "prefs",
            {
                "download.default_directory": self.downloads,
                "download.prompt_for_download": False,
                "safebrowsing.enabled": False,
            },
        )
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path="/usr/bin/chromedriver")
        self.d = webdriver.Chrome(service=service, options=opts)
        self.d.set_page_load_timeout(30)
        self.d.execute_cdp_cmd(
            "Browser.setDownloadBehavior",
            {"behavior": "allow", "downloadPath": self.downloads},
        )
        self.wait = WebDriverWait(self.d, 20)

    def close(self):
        try:
            for entry in self.d.get_log("browser"):
                if entry.get("level") == "SEVERE":
                    log("browser console:", entry.get("message"))
        except Exception:
            pass
        self.d.quit()

    # -- helpers
    def shot(self, name):
        self.step += 1
        path = os.path.join(SHOTS, f"{self.scenario}-{self.step:02d}-{name}.png")
        try:
            # The whole page, not only the viewport.
            png = self.d.execute_cdp_cmd(
                "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
            )["data"]
            with open(path, "wb") as f:
                f.write(base64.b64decode(png))
        except Exception:
            self.d.save_screenshot(path)
        self.check_labels(name)
        log("step", self.step, name)

    def check_labels(self, where):
        """Every visible form control has an accessible name (label, aria-label or labelledby)."""
        missing = self.d.execute_script(
            """
            const out = [];
            for (const el of document.querySelectorAll('input, select, textarea, button')) {
              if (el.type === 'hidden' || el.offsetParent === null) continue;
              const named = (el.labels && el.labels.length) || el.getAttribute('aria-label')
                || el.getAttribute('aria-labelledby') || (el.tagName === 'BUTTON' && el.textContent.trim());
              if (!named) out.push(el.outerHTML.slice(0, 120));
            }
            return out;
            """
        )
        assert not missing, f"{where}: controls without a label: {missing}"

    def el(self, css):
        return self.wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))

    def visible(self, css):
        return self.wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))

    def click(self, css):
        e = self.wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, css)))
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", e)
        e.click()
        return e

    def type(self, css, text, clear=True):
        e = self.visible(css)
        if clear:
            e.clear()
        e.send_keys(text)
        return e

    def text(self, css):
        return self.visible(css).text

    def wait_text(self, css, needle, timeout=20):
        js = "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';"
        try:
            WebDriverWait(self.d, timeout).until(lambda d: needle in (d.execute_script(js, css) or ""))
        except TimeoutException:
            found = self.d.find_elements(By.CSS_SELECTOR, css)
            raise AssertionError(
                f"{css} never showed {needle!r}; it shows {[f.text for f in found]!r}; "
                f"errors: {[e.text for e in self.d.find_elements(By.CSS_SELECTOR, '.error') if e.text]}"
            )
        return self.d.execute_script(js, css)

    def wait_h1(self, text):
        return self.wait_text("main h1", text)

    def error_of(self, css):
        e = self.visible(css)
        t = e.find_element(By.CSS_SELECTOR, ".error-type").text
        m = e.find_element(By.CSS_SELECTOR, ".error-message").text
        log(f"  shown in {css}: {t}: {m}")
        return t, m

    def go(self, hash_):
        self.d.get(f"{ENDPOINT}/console/{hash_}")

    def sign_in(self, secret=SECRET, region=REGION, expect_ok=True):
        self.go("")
        self.wait_h1("Sign in")
        self.type("#signin-akid", AKID)
        self.type("#signin-secret", secret)
        self.type("#signin-region", region)
        self.click("#signin-submit")
        if expect_ok:
            self.wait_h1("Customer managed keys")

    def wait_download(self, name="ImportParameters.zip", timeout=20):
        path = os.path.join(self.downloads, name)
        end = time.time() + timeout
        while time.time() < end:
            if os.path.exists(path) and not any(
                f.endswith(".crdownload") for f in os.listdir(self.downloads)
            ):
                return path
            time.sleep(0.2)
        raise AssertionError(f"no download {name}: {os.listdir(self.downloads)}")

    def download_parameters(self, key_id, spec, alg):
        for f in os.listdir(self.downloads):
            os.remove(os.path.join(self.downloads, f))
        Select(self.visible("#wrapping-key-spec")).select_by_value(spec)
        Select(self.visible("#wrapping-algorithm")).select_by_value(alg)
        self.click("#download-parameters")
        self.wait_text("#download-result", "ImportParameters.zip")
        z = self.wait_download()
        return read_zip(z, key_id, spec, alg)

    def upload(self, material_path, token_path):
        self.el("#wrapped-key-material").send_keys(material_path)
        self.el("#import-token").send_keys(token_path)
        self.click("#upload-material")


def read_zip(path, key_id, spec, alg):
    """The downloaded ImportParameters.zip: AWS's three file names, DER key, binary token."""
    out = os.path.join(WORK, "params")
    os.makedirs(out, exist_ok=True)
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None, "zip CRC mismatch"
        names = sorted(z.namelist())
        stamp = re.fullmatch(rf"README_{re.escape(key_id)}_(\d{{8}})\.txt", names[0])
        assert stamp, names
        st = stamp.group(1)
        assert names == [
            f"README_{key_id}_{st}.txt",
            f"importToken_{key_id}_{st}",
            f"wrappingKey_{key_id}_{st}",
        ], names
        readme = z.read(names[0]).decode()
        assert f"Wrapping algorithm: {alg}" in readme, readme
        assert spec in readme, readme
        z.extractall(out)
    wrap = os.path.join(out, f"wrappingKey_{key_id}_{st}")
    token = os.path.join(out, f"importToken_{key_id}_{st}")
    # The wrapping key is DER SubjectPublicKeyInfo of the chosen size (as the seeds read it).
    info = run(["openssl", "rsa", "-pubin", "-inform", "DER", "-in", wrap, "-noout", "-text"])
    bits = spec.split("_")[1]
    assert f"Public-Key: ({bits} bit)" in info, info
    assert os.path.getsize(token) > 100
    return {"wrap": wrap, "token": token, "readme": readme, "stamp": st, "dir": out}


def run(cmd, cwd=None):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, f"{cmd} failed: {r.stdout} {r.stderr}"
    return r.stdout


def seed_wrap_oaep256(params, name="EncryptedKeyMaterial.bin", plain=None):
    """Seed 003's own commands: openssl rand 32, openssl pkeyutl … rsa_oaep_md:sha256."""
    d = params["dir"]
    if plain is None:
        plain = os.path.join(d, "PlaintextKeyMaterial.bin")
        run(["openssl", "rand", "-out", plain, "32"])
    out = os.path.join(d, name)
    run(
        [
            "openssl", "pkeyutl", "-in", plain, "-out", out, "-inkey", params["wrap"],
            "-keyform", "DER", "-pubin", "-encrypt",
            "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256",
        ]
    )
    return out, plain


def key_id_from_hash(c):
    m = re.search(r"#/keys/([0-9a-f-]{36}|mrk-[0-9a-f]{32})", c.d.current_url)
    assert m, c.d.current_url
    return m.group(1)


# ------------------------------------------------------------------------- scenarios


def seed003(c):
    """Seed 003 end to end: sign in, create an External key with alias, download the zip, wrap
    with the seed's openssl command, upload with the token, banner, Enabled, other account."""
    # A wrong secret is refused in words, and nothing is stored.
    c.sign_in(secret="not-the-secret", expect_ok=False)
    t, m = c.error_of("#signin-error")
    assert t == "SignatureDoesNotMatch" or t.endswith("Exception") or t == "InvalidSignatureException", (t, m)
    c.shot("signin-wrong-secret")
    assert c.d.execute_script("return sessionStorage.length") == 0
    c.sign_in()
    stored = c.d.execute_script("return Object.keys(sessionStorage)")
    assert stored == ["keyferry-console-credentials"], stored
    assert c.d.execute_script("return localStorage.length") == 0
    c.shot("keys-empty")

    c.click("#create-key")
    c.wait_text("#wizard-heading", "Step 1: Configure key")
    c.click("#advanced-options summary")
    c.click("#origin-EXTERNAL")
    c.click("#wizard-next")
    t, m = c.error_of("#wizard-error")
    assert "imported key" in m, m
    c.shot("external-needs-acknowledgement")
    c.click("#external-ack")
    c.shot("configure-key-external")
    c.click("#wizard-next")

    c.wait_text("#wizard-heading", "Step 2: Add labels")
    c.type("#alias", "bluescape-byok")
    c.type("#description", "Bluescape BYOK key (seed 003)")
    c.click("#add-tag")
    c.type("#tag-key-0", "project")
    c.type("#tag-value-0", "bluescape")
    c.shot("labels")
    c.click("#wizard-next")

    c.wait_text("#wizard-heading", "Step 3: Define key administrative permissions")
    c.type("#key-admins", "arn:aws:iam::111122223333:user/not an arn")
    c.click("#wizard-next")
    t, m = c.error_of("#wizard-error")
    assert "Not an IAM user or role ARN" in m, m
    c.type("#key-admins", "arn:aws:iam::111122223333:user/KMSAdminUser")
    c.shot("key-administrators")
    c.click("#wizard-next")

    c.wait_text("#wizard-heading", "Step 4: Define key usage permissions")
    c.type("#key-users", "arn:aws:iam::111122223333:role/KeyUserRole")
    c.shot("key-users")
    c.click("#wizard-next")

    c.wait_text("#wizard-heading", "Step 5: Review")
    WebDriverWait(c.d, 20).until(lambda d: d.find_element(By.ID, "key-policy").get_attribute("value"))
    policy = json.loads(c.el("#key-policy").get_attribute("value"))
    assert policy["Id"] == "key-consolepolicy-3", policy
    sids = [s["Sid"] for s in policy["Statement"]]
    assert sids == [
        "Enable IAM User Permissions",
        "Allow access for Key Administrators",
        "Allow use of the key",
        "Allow attachment of persistent resources",
    ], sids
    c.shot("review-policy")
    c.click("#wizard-finish")

    c.wait_h1("Import key material")
    c.wait_text("#banner", "pending import")
    key_id = key_id_from_hash(c)
    c.shot("import-step")
    # The seed's choice: RSAES_OAEP_SHA_256 (wrapping key RSA 2048, the console default).
    params = c.download_parameters(key_id, "RSA_2048", "RSAES_OAEP_SHA_256")
    c.shot("downloaded-parameters")
    enc, _plain = seed_wrap_oaep256(params)
    c.upload(enc, params["token"])
    c.wait_text("#banner", "Key material imported")
    c.shot("imported-banner")
    c.wait_text("#key-state", "Enabled")

    md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert md["KeyState"] == "Enabled" and md["Origin"] == "EXTERNAL", md
    assert md["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE", md
    assert md["Description"] == "Bluescape BYOK key (seed 003)"
    ct = kms.encrypt(KeyId="alias/bluescape-byok", Plaintext=b"seed 003")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=ct)["Plaintext"] == b"seed 003"
    tags = kms.list_resource_tags(KeyId=key_id)["Tags"]
    assert tags == [{"TagKey": "project", "TagValue": "bluescape"}], tags

    # Other AWS accounts on the key page, then the ARN with its copy button.
    c.click("#add-other-accounts")
    c.visible("#other-accounts-dialog")
    c.type("#account-id-0", "12345")
    c.click("#other-accounts-dialog-save")
    t, m = c.error_of("#other-accounts-dialog-error")
    assert "12 digits" in m, m
    c.type("#account-id-0", "444455556666")
    c.shot("other-accounts-dialog")
    c.click("#other-accounts-dialog-save")
    c.wait_text("#banner", "444455556666")
    c.wait_text("#policy-accounts", "444455556666")
    c.shot("other-account-added")
    assert c.text("#key-arn") == md["Arn"]
    c.click("#copy-arn")
    c.wait_text("#copy-status", "ARN")
    c.shot("arn")

    pol = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    assert pol["Id"] == "key-consolepolicy-3"
    by = {s["Sid"]: s for s in pol["Statement"]}
    assert by["Enable IAM User Permissions"]["Principal"]["AWS"] == "arn:aws:iam::111122223333:root"
    assert by["Enable IAM User Permissions"]["Action"] == "kms:*"
    admin = by["Allow access for Key Administrators"]
    assert admin["Principal"]["AWS"] == ["arn:aws:iam::111122223333:user/KMSAdminUser"]
    assert "kms:ImportKeyMaterial" in admin["Action"] and "kms:ScheduleKeyDeletion" in admin["Action"]
    for sid in ["Allow use of the key", "Allow attachment of persistent resources"]:
        assert by[sid]["Principal"]["AWS"] == [
            "arn:aws:iam::111122223333:role/KeyUserRole",
            "arn:aws:iam::444455556666:root",
        ], by[sid]
    assert by["Allow use of the key"]["Action"] == [
        "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey",
    ]
    assert by["Allow attachment of persistent resources"]["Condition"] == {
        "Bool": {"kms:GrantIsForAWSResource": True}
    }

    # Removing the account edits both statements back.
    c.click("button[aria-label='Remove account 444455556666']")
    c.wait_text("#banner", "removed")
    pol = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    by = {s["Sid"]: s for s in pol["Statement"]}
    assert by["Allow use of the key"]["Principal"]["AWS"] == ["arn:aws:iam::111122223333:role/KeyUserRole"]

    # The key list shows it as AWS does.
    c.go("#/keys")
    c.wait_text("#keys-table tbody", "bluescape-byok")
    row = c.el(f"tr[data-key-id='{key_id}']").text
    assert "Enabled" in row and "External (Import key material)" in row and "SYMMETRIC_DEFAULT" in row, row
    c.shot("key-list")
    # Signing out forgets the credentials.
    c.click("#signout")
    c.wait_h1("Sign in")
    assert c.d.execute_script("return sessionStorage.length") == 0


def lifecycle(c):
    """Key list (paging, filter), key page sections, enable/disable, schedule/cancel deletion,
    aliases, tags, description, the policy JSON editor with MalformedPolicyDocument in place."""
    ids = []
    for i in range(12):
        k = kms.create_key(Description=f"list key {i}")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=f"alias/list-{i:02d}", TargetKeyId=k)
        ids.append(k)
    hmac = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    c.sign_in()
    c.wait_text("#page-number", "Page 1")
    rows1 = c.d.find_elements(By.CSS_SELECTOR, "#keys-table tbody tr")
    assert len(rows1) == 10, len(rows1)
    c.shot("list-page-1")
    c.click("#page-next")
    c.wait_text("#page-number", "Page 2")
    WebDriverWait(c.d, 20).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#keys-table tbody tr[data-key-id]")) == 3)
    assert c.el("#page-next").get_attribute("disabled") is not None
    c.shot("list-page-2")
    c.click("#page-prev")
    c.wait_text("#page-number", "Page 1")
    # Filter on the page shown.
    first_alias = c.d.find_element(By.CSS_SELECTOR, "#keys-table tbody tr td a").text
    c.type("#keys-filter", first_alias)
    WebDriverWait(c.d, 10).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#keys-table tbody tr[data-key-id]")) == 1)
    c.shot("list-filtered")

    key = ids[3]
    c.go(f"#/keys/{key}")
    c.wait_h1("list-03")
    for section in ["#general-configuration", "#key-policy", "#cryptographic-configuration", "#key-material", "#aliases", "#tags-section"]:
        c.el(section)
    assert c.text("#crypto-key-spec") == "SYMMETRIC_DEFAULT"
    c.shot("key-page")

    c.click("#disable-key")
    c.wait_text("#key-state", "Disabled")
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Disabled"
    c.shot("disabled")
    c.click("#enable-key")
    c.wait_text("#key-state", "Enabled")
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"

    c.click("#schedule-deletion")
    c.visible("#schedule-deletion-dialog")
    c.type("#waiting-period", "7")
    c.click("#schedule-deletion-dialog-save")
    t, m = c.error_of("#schedule-deletion-dialog-error")
    assert "confirmation" in m, m
    c.type("#waiting-period", "3")
    c.click("#deletion-confirm")
    c.click("#schedule-deletion-dialog-save")
    t, m = c.error_of("#schedule-deletion-dialog-error")
    assert t == "ValidationException", (t, m)
    c.shot("deletion-window-error")
    c.type("#waiting-period", "7")
    c.click("#schedule-deletion-dialog-save")
    c.wait_text("#key-state", "Pending deletion")
    md = kms.describe_key(KeyId=key)["KeyMetadata"]
    assert md["KeyState"] == "PendingDeletion", md
    days = (md["DeletionDate"].timestamp() - time.time()) / 86400
    assert 6.9 < days < 7.1, days
    c.el("#deletion-date")
    c.shot("pending-deletion")
    c.click("#cancel-deletion")
    c.wait_text("#key-state", "Disabled")
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Disabled"
    c.shot("deletion-canceled")

    # Description, alias, tags.
    c.click("#edit-description")
    c.type("#description-input", "renamed in the console")
    c.click("#description-save")
    c.wait_text("#key-description", "renamed in the console")
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["Description"] == "renamed in the console"
    c.type("#new-alias", "second-name")
    c.click("#create-alias")
    c.wait_text("#alias-list", "alias/second-name")
    c.type("#new-alias", "list-04")
    c.click("#create-alias")
    t, m = c.error_of("#alias-error")
    assert t == "AlreadyExistsException", (t, m)
    c.type("#new-tag-key", "team")
    c.type("#new-tag-value", "platform")
    c.click("#add-key-tag")
    c.wait_text("#tags-table", "platform")
    assert kms.list_resource_tags(KeyId=key)["Tags"] == [{"TagKey": "team", "TagValue": "platform"}]
    c.click("button[aria-label='Remove tag team']")
    c.wait_text("#banner", "removed")
    assert kms.list_resource_tags(KeyId=key)["Tags"] == []
    c.shot("aliases-tags")

    # Policy view: invalid JSON is refused with the exception, in place.
    c.click("#policy-toggle")
    ta = c.visible("#policy-json")
    before = json.loads(ta.get_attribute("value"))
    assert before["Id"] == "key-default-1", before
    ta.clear()
    ta.send_keys('{"Version": "2012-10-17", "Statement": [')
    c.click("#policy-save")
    t, m = c.error_of("#policy-save-error")
    assert t == "MalformedPolicyDocumentException", (t, m)
    c.shot("malformed-policy")
    ta = c.visible("#policy-json")
    ta.clear()
    edited = dict(before)
    edited["Id"] = "edited-in-console"
    ta.send_keys(json.dumps(edited))
    c.click("#policy-save")
    c.wait_text("#banner", "saved")
    assert json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])["Id"] == "edited-in-console"

    # An HMAC key's cryptographic configuration.
    c.go(f"#/keys/{hmac}")
    c.wait_text("#crypto-key-spec", "HMAC_256")
    assert "HMAC_SHA_256" in c.text("#cryptographic-configuration")
    c.shot("hmac-key")


def import_errors(c):
    """Wrong file uploaded, token of another key, expired token, different material on re-import,
    key material that expires, delete key material — each error shown next to its step."""
    a = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    b = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    c.sign_in()
    c.go(f"#/keys/{b}/import")
    c.wait_h1("Import key material")
    pb = c.download_parameters(b, "RSA_3072", "RSAES_OAEP_SHA_256")
    token_b = os.path.join(WORK, "token-b")
    os.replace(pb["token"], token_b)

    c.go(f"#/keys/{a}/import")
    c.wait_h1("Import key material")
    c.el("#import-key-link")
    pa = c.download_parameters(a, "RSA_2048", "RSAES_OAEP_SHA_256")
    enc, plain = seed_wrap_oaep256(pa)
    kept = os.path.join(WORK, "PlaintextKeyMaterial.bin")
    os.replace(plain, kept)
    plain = kept
    # Nothing chosen.
    c.click("#upload-material")
    t, m = c.error_of("#upload-error")
    assert "Choose the wrapped key material" in m, m
    # Wrong file: the wrapping key itself uploaded as the wrapped key material.
    c.upload(pa["wrap"], pa["token"])
    t, m = c.error_of("#upload-error")
    assert t in ("InvalidCiphertextException", "ValidationException"), (t, m)
    c.shot("wrong-file")
    # Wrong file: the material and token swapped.
    c.go(f"#/keys/{a}/import")
    c.wait_h1("Import key material")
    c.upload(pa["token"], enc)
    t2, m2 = c.error_of("#upload-error")
    assert t2.endswith("Exception"), (t2, m2)
    c.shot("files-swapped")
    # The token of another key.
    c.go(f"#/keys/{a}/import")
    c.wait_h1("Import key material")
    c.upload(enc, token_b)
    t, m = c.error_of("#upload-error")
    assert t in ("InvalidImportTokenException", "InvalidCiphertextException"), (t, m)
    c.shot("token-of-other-key")

    # An expired token: issued by a second node on the same database and root key whose clock
    # is 25 hours behind (faketime); GetParametersForImport tokens are valid 24 hours.
    expired_ep = os.environ.get("EXPIRED_TOKEN_ENDPOINT")
    assert expired_ep, "EXPIRED_TOKEN_ENDPOINT not set"
    old = json.loads(
        run(
            [
                "faketime", "-f", "-25h", sys.executable, "-c",
                "import boto3,json,sys,base64;"
                "k=boto3.client('kms',endpoint_url=sys.argv[1]);"
                "r=k.get_parameters_for_import(KeyId=sys.argv[2],WrappingAlgorithm='RSAES_OAEP_SHA_256',WrappingKeySpec='RSA_2048');"
                "print(json.dumps({'pk':base64.b64encode(r['PublicKey']).decode(),'tok':base64.b64encode(r['ImportToken']).decode(),'to':r['ParametersValidTo'].timestamp()}))",
                expired_ep, a,
            ]
        )
    )
    assert old["to"] < time.time(), old
    exp_dir = os.path.join(WORK, "expired")
    os.makedirs(exp_dir, exist_ok=True)
    with open(os.path.join(exp_dir, "wrap.der"), "wb") as f:
        f.write(base64.b64decode(old["pk"]))
    exp_token = os.path.join(exp_dir, "importToken_expired")
    with open(exp_token, "wb") as f:
        f.write(base64.b64decode(old["tok"]))
    exp_enc, _ = seed_wrap_oaep256({"dir": exp_dir, "wrap": os.path.join(exp_dir, "wrap.der")}, plain=plain)
    c.go(f"#/keys/{a}/import")
    c.wait_h1("Import key material")
    c.upload(exp_enc, exp_token)
    t, m = c.error_of("#upload-error")
    assert t == "ExpiredImportTokenException", (t, m)
    c.shot("expired-token")
    assert kms.describe_key(KeyId=a)["KeyMetadata"]["KeyState"] == "PendingImport"

    # The right files, with an expiry date.
    c.go(f"#/keys/{a}/import")
    c.wait_h1("Import key material")
    c.el("#wrapped-key-material").send_keys(enc)
    c.el("#import-token").send_keys(pa["token"])
    c.click("#expiration-expires")
    valid_to = time.gmtime(time.time() + 30 * 86400)
    c.d.execute_script(
        "const e=document.getElementById('expiration-date'); e.value=arguments[0];",
        time.strftime("%Y-%m-%dT%H:%M", valid_to),
    )
    c.shot("upload-with-expiry")
    c.click("#upload-material")
    c.wait_text("#banner", "Key material imported")
    md = kms.describe_key(KeyId=a)["KeyMetadata"]
    assert md["KeyState"] == "Enabled" and md["ExpirationModel"] == "KEY_MATERIAL_EXPIRES", md
    assert abs(md["ValidTo"].timestamp() - (time.time() + 30 * 86400)) < 180, md["ValidTo"]
    c.wait_text("#key-expiration", "UTC")
    c.wait_text("#current-material-id", md["CurrentKeyMaterialId"])
    c.shot("imported-with-expiry")

    # Re-import different material: IncorrectKeyMaterialException, next to the upload step.
    c.click("#import-material")
    c.wait_h1("Import key material")
    pa2 = c.download_parameters(a, "RSA_2048", "RSAES_OAEP_SHA_256")
    other_plain = os.path.join(WORK, "OtherPlaintextKeyMaterial.bin")
    run(["openssl", "rand", "-out", other_plain, "32"])
    other, _ = seed_wrap_oaep256(pa2, name="OtherMaterial.bin", plain=other_plain)
    c.upload(other, pa2["token"])
    t, m = c.error_of("#upload-error")
    assert t == "IncorrectKeyMaterialException", (t, m)
    c.shot("different-material")
    # Re-import the same material: fine.
    again, _ = seed_wrap_oaep256(pa2, name="SameMaterial.bin", plain=plain)
    c.go(f"#/keys/{a}/import")
    c.wait_h1("Import key material")
    c.upload(again, pa2["token"])
    c.wait_text("#banner", "Key material imported")

    # Delete key material: the key goes back to Pending import.
    c.click("#delete-material")
    c.visible("#delete-material-dialog")
    c.click("#delete-material-confirm")
    c.click("#delete-material-dialog-save")
    c.wait_text("#key-state", "Pending import")
    assert kms.describe_key(KeyId=a)["KeyMetadata"]["KeyState"] == "PendingImport"
    c.shot("material-deleted")


def rsa_aes_key_wrap(c):
    """An RSA signing key with External origin, created in the wizard, imported with
    RSA_AES_KEY_WRAP_SHA_256 (the two-step openssl procedure); KMS signs, openssl verifies."""
    c.sign_in()
    c.click("#create-key")
    c.click("#key-type-Asymmetric")
    c.click("#key-usage-SIGN_VERIFY")
    Select(c.visible("#key-spec")).select_by_value("RSA_2048")
    c.click("#advanced-options summary")
    c.click("#origin-EXTERNAL")
    c.click("#external-ack")
    c.shot("asymmetric-external")
    c.click("#wizard-next")
    c.type("#alias", "rsa-signing-byok")
    c.click("#wizard-next")
    c.click("#wizard-next")
    c.type("#key-users", "arn:aws:iam::111122223333:user/Signer")
    c.click("#wizard-next")
    WebDriverWait(c.d, 20).until(lambda d: d.find_element(By.ID, "key-policy").get_attribute("value"))
    pol = json.loads(c.el("#key-policy").get_attribute("value"))
    use = [s for s in pol["Statement"] if s["Sid"] == "Allow use of the key"][0]
    assert use["Action"] == ["kms:DescribeKey", "kms:GetPublicKey", "kms:Sign", "kms:Verify"], use
    c.click("#wizard-finish")
    c.wait_h1("Import key material")
    key_id = key_id_from_hash(c)
    opts = [o.get_attribute("value") for o in Select(c.visible("#wrapping-algorithm")).options]
    assert opts == ["RSA_AES_KEY_WRAP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1"], opts
    params = c.download_parameters(key_id, "RSA_4096", "RSA_AES_KEY_WRAP_SHA_256")
    c.shot("rsa-aes-parameters")
    d = params["dir"]
    run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa.pem"], cwd=d)
    run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", "rsa.pem", "-outform", "DER", "-out", "PlaintextKeyMaterial.der"], cwd=d)
    run(["openssl", "rand", "-out", "aes-key.bin", "32"], cwd=d)
    aes_hex = open(os.path.join(d, "aes-key.bin"), "rb").read().hex()
    run(["openssl", "enc", "-id-aes256-wrap-pad", "-K", aes_hex, "-iv", "A65959A6",
         "-in", "PlaintextKeyMaterial.der", "-out", "key-material-wrapped.bin"], cwd=d)
    run(["openssl", "pkeyutl", "-encrypt", "-in", "aes-key.bin", "-out", "aes-key-wrapped.bin",
         "-inkey", params["wrap"], "-keyform", "DER", "-pubin",
         "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256"], cwd=d)
    enc = os.path.join(d, "EncryptedKeyMaterial.bin")
    with open(enc, "wb") as f:
        for part in ["aes-key-wrapped.bin", "key-material-wrapped.bin"]:
            f.write(open(os.path.join(d, part), "rb").read())
    c.upload(enc, params["token"])
    c.wait_text("#banner", "Key material imported")
    c.wait_text("#key-state", "Enabled")
    c.shot("rsa-imported")
    md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert md["KeyState"] == "Enabled" and md["KeySpec"] == "RSA_2048" and md["KeyUsage"] == "SIGN_VERIFY", md
    assert "RSASSA_PSS_SHA_256" in c.text("#cryptographic-configuration")
    pub = kms.get_public_key(KeyId=key_id)["PublicKey"]
    ours = subprocess.run(["openssl", "pkey", "-in", os.path.join(d, "rsa.pem"), "-pubout", "-outform", "DER"], capture_output=True).stdout
    assert pub == ours, "GetPublicKey differs from the imported key's public key"
    msg = os.path.join(d, "msg")
    open(msg, "wb").write(b"signed by an imported RSA key")
    sig = kms.sign(KeyId=key_id, Message=b"signed by an imported RSA key", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")["Signature"]
    open(os.path.join(d, "sig"), "wb").write(sig)
    run(["openssl", "pkey", "-in", "rsa.pem", "-pubout", "-out", "pub.pem"], cwd=d)
    out = run(["openssl", "dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig", "msg"], cwd=d)
    assert "Verified OK" in out, out


def assert_no_overflow(c, where):
    wide = c.d.execute_script(
        """
        const w = document.documentElement.clientWidth, out = [];
        for (const e of document.querySelectorAll('main *, header *'))
          if (e.getBoundingClientRect().right > w + 1) out.push(e.tagName + '#' + e.id + '.' + e.className);
        return [document.documentElement.scrollWidth - w, out.slice(0, 8)];
        """
    )
    assert wide[0] <= 0, f"horizontal overflow {wide[0]}px on {where}: {wide[1]}"


def layout_keyboard(c):
    """Phone width: no horizontal scrolling, tables as stacked cards; keyboard only: sign in,
    open the create wizard, choose External and acknowledge with Space, Escape closes dialogs."""
    kms.create_alias(AliasName="alias/phone", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    c.d.set_window_size(390, 844)
    c.go("")
    c.wait_h1("Sign in")
    # Keyboard only: the page's heading has the focus, Tab walks the fields in order, Enter signs in.
    assert c.d.switch_to.active_element.tag_name == "h1"
    assert c.el("a.skip").get_attribute("href").endswith("#main")
    active = lambda: c.d.switch_to.active_element.get_attribute("id")
    ActionChains(c.d).send_keys(Keys.TAB).perform()
    assert active() == "signin-akid", active()
    ActionChains(c.d).send_keys(AKID, Keys.TAB, SECRET, Keys.TAB).perform()
    assert active() == "signin-region", active()
    assert c.el("#signin-region").get_attribute("value") == REGION == "us-east-1"
    ActionChains(c.d).send_keys(Keys.ENTER).perform()
    c.wait_h1("Customer managed keys")
    c.wait_text("#keys-table tbody", "phone")
    c.shot("phone-key-list")
    assert_no_overflow(c, "the key list")
    display = c.d.execute_script("return getComputedStyle(document.querySelector('#keys-table td')).display")
    assert display == "block", display
    c.click("#keys-table tbody a")
    c.wait_h1("phone")
    c.shot("phone-key-page")
    assert_no_overflow(c, "the key page")
    # Dialog: keyboard focus starts in it, Escape closes it.
    c.click("#add-other-accounts")
    c.visible("#other-accounts-dialog")
    assert c.d.switch_to.active_element.get_attribute("id") == "account-id-0"
    c.d.switch_to.active_element.send_keys(Keys.ESCAPE)
    WebDriverWait(c.d, 5).until(lambda d: not d.find_elements(By.CSS_SELECTOR, "dialog[open]"))
    # Wizard by keyboard: the focus moves to each step's heading.
    c.go("#/create")
    c.wait_text("#wizard-heading", "Step 1")
    c.click("#advanced-options summary")
    ext = c.el("#origin-EXTERNAL")
    ext.send_keys(Keys.SPACE)
    assert c.el("#origin-EXTERNAL").is_selected()
    c.el("#external-ack").send_keys(Keys.SPACE)
    assert c.el("#external-ack").is_selected()
    c.el("#wizard-next").send_keys(Keys.ENTER)
    c.wait_text("#wizard-heading", "Step 2")
    assert c.d.switch_to.active_element.get_attribute("id") == "wizard-heading"
    c.shot("phone-wizard")
    # Laptop width: the same page has no overflow either.
    c.d.set_window_size(1366, 768)
    c.go("#/keys")
    c.wait_text("#keys-table tbody", "phone")
    display = c.d.execute_script("return getComputedStyle(document.querySelector('#keys-table td')).display")
    assert display == "table-cell", display
    c.shot("laptop-key-list")


SCENARIOS = {
    "seed003": seed003,
    "lifecycle": lifecycle,
    "import_errors": import_errors,
    "rsa_aes_key_wrap": rsa_aes_key_wrap,
    "layout_keyboard": layout_keyboard,
}


def main():
    name = sys.argv[1]
    c = Console(name)
    try:
        SCENARIOS[name](c)
    except BaseException:
        try:
            c.shot("FAILED")
        except BaseException:
            pass
        raise
    finally:
        c.close()
    log("PASS", name)


if __name__ == "__main__":
    main()
