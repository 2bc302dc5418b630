// The Keyferry web console: pages and steps as the AWS KMS console has them (the seed
// procedures click through these). Every page names the KMS API calls behind it.
// No framework, no build step: DOM built with textContent only (no innerHTML of data).

import {
  call,
  listAll,
  loadCredentials,
  saveCredentials,
  clearCredentials,
  b64ToBytes,
  bytesToB64,
  KmsError,
} from "./kms.js";
import { makeZip } from "./zip.js";
import {
  consolePolicy,
  defaultView,
  editOtherAccount,
  PRINCIPAL_ARN,
  ACCOUNT_ID,
} from "./policy.js";

// ---------------------------------------------------------------- DOM helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const $ = (sel, root = document) => root.querySelector(sel);

function api(...ops) {
  return h(
    "p",
    { class: "api" },
    "API: ",
    ops.flatMap((o, i) => (i ? [", ", h("code", {}, o)] : [h("code", {}, o)])),
  );
}

/** An error box: the AWS exception name and message, in words, next to the step. */
function errorBox(id) {
  return h("div", { class: "error", id, role: "alert", hidden: true });
}

function showError(box, err) {
  const type = err instanceof KmsError ? err.type : "Error";
  const msg = err instanceof KmsError ? err.message : String(err && err.message ? err.message : err);
  box.replaceChildren(h("strong", { class: "error-type" }, type), msg ? ": " : "", h("span", { class: "error-message" }, msg));
  box.hidden = false;
}

function clearError(box) {
  box.hidden = true;
  box.replaceChildren();
}

function field(id, label, input, hint) {
  input.id = id;
  const parts = [h("label", { for: id }, label)];
  if (hint) {
    const hid = `${id}-hint`;
    input.setAttribute("aria-describedby", hid);
    parts.push(h("p", { class: "hint", id: hid }, hint));
  }
  parts.push(input);
  return h("div", { class: "field" }, parts);
}

function radio(name, value, label, checked, onchange) {
  const id = `${name}-${value}`.replace(/[^\w-]/g, "_");
  return h(
    "div",
    { class: "choice" },
    h("input", { type: "radio", name, id, value, checked, onchange }),
    h("label", { for: id }, label),
  );
}

function checkbox(id, label, checked, onchange) {
  return h(
    "div",
    { class: "choice" },
    h("input", { type: "checkbox", id, checked, onchange }),
    h("label", { for: id }, label),
  );
}

function select(id, options, value, onchange) {
  return h(
    "select",
    { id, onchange },
    options.map((o) => {
      const [v, t] = Array.isArray(o) ? o : [o, o];
      return h("option", { value: v, selected: v === value }, t);
    }),
  );
}

function fmtDate(epochSeconds) {
  if (epochSeconds === undefined || epochSeconds === null) return "—";
  const d = new Date(Number(epochSeconds) * 1000);
  return d.toISOString().replace("T", " ").replace(/\.\d{3}Z$/, " UTC");
}

function announce(text) {
  $("#announce").textContent = text;
}

let flash = null; // {text, kind}: a banner for the next page

function banner() {
  if (!flash) return null;
  const b = h("div", { class: flash.kind === "warn" ? "warn" : "banner", role: "status", id: "banner" }, flash.text);
  flash = null;
  return b;
}

function page(title, ...content) {
  const main = $("#main");
  document.title = `${title} — Keyferry console`;
  main.replaceChildren(h("h1", { tabindex: "-1" }, title), ...content.flat(Infinity).filter(Boolean));
  $("h1", main).focus();
}

function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

// ---------------------------------------------------------------- KMS helpers

let accountCache = null;

/** {partition, account} of the signed-in identity: from a key ARN, else from NotFound's ARN. */
async function whoAmI() {
  if (accountCache) return accountCache;
  const parse = (s) => {
    const m = /arn:(aws[a-z-]*):kms:[^:]*:(\d{12}):/.exec(s || "");
    return m ? { partition: m[1], account: m[2] } : null;
  };
  const r = await call("ListKeys", { Limit: 1 });
  let found = r.Keys && r.Keys.length ? parse(r.Keys[0].KeyArn) : null;
  if (!found) {
    try {
      await call("DescribeKey", { KeyId: "00000000-0000-0000-0000-000000000000" });
    } catch (e) {
      found = parse(e.message);
    }
  }
  accountCache = found;
  return found;
}

function keyType(md) {
  if (md.KeySpec === "SYMMETRIC_DEFAULT") return "Symmetric";
  if (md.KeySpec.startsWith("HMAC_")) return "Symmetric (HMAC)";
  return "Asymmetric";
}

function originText(o) {
  return (
    {
      AWS_KMS: "AWS KMS",
      EXTERNAL: "External (Import key material)",
      AWS_CLOUDHSM: "AWS CloudHSM key store",
      EXTERNAL_KEY_STORE: "External key store",
    }[o] || o
  );
}

function usageText(u) {
  return (
    {
      ENCRYPT_DECRYPT: "Encrypt and decrypt",
      SIGN_VERIFY: "Sign and verify",
      GENERATE_VERIFY_MAC: "Generate and verify MAC",
      KEY_AGREEMENT: "Key agreement",
    }[u] || u
  );
}

function stateText(s) {
  return (
    {
      Enabled: "Enabled",
      Disabled: "Disabled",
      PendingDeletion: "Pending deletion",
      PendingImport: "Pending import",
      PendingReplicaDeletion: "Pending replica deletion",
      Unavailable: "Unavailable",
      Creating: "Creating",
      Updating: "Updating",
    }[s] || s
  );
}

function stateEl(s) {
  return h("span", { class: `state-${s}`, "data-state": s }, stateText(s));
}

// ---------------------------------------------------------------- sign in

function signInPage() {
  const err = errorBox("signin-error");
  const akid = h("input", { type: "text", autocomplete: "off", spellcheck: "false", required: true });
  const secret = h("input", { type: "password", autocomplete: "off", required: true });
  const region = h("input", { type: "text", value: "us-east-1", list: "regions", required: true, spellcheck: "false" });
  const regions = h(
    "datalist",
    { id: "regions" },
    ["us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"].map((r) =>
      h("option", { value: r }),
    ),
  );
  const form = h(
    "form",
    { class: "panel", id: "signin-form", "aria-describedby": "signin-note" },
    field("signin-akid", "Access key ID", akid),
    field("signin-secret", "Secret access key", secret),
    field("signin-region", "Region", region, "The Region the server signs for (keyferry serve --region)."),
    regions,
    h("p", { class: "hint", id: "signin-note" },
      "The key pair is kept in this tab's session storage only and is never sent: each request is signed with SigV4 in the browser."),
    h("button", { type: "submit", class: "primary", id: "signin-submit" }, "Sign in"),
    err,
    api("ListKeys"),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError(err);
    const creds = { accessKeyId: akid.value.trim(), secretAccessKey: secret.value, region: region.value.trim() };
    try {
      await call("ListKeys", { Limit: 1 }, creds);
    } catch (e) {
      showError(err, e);
      return;
    }
    saveCredentials(creds);
    accountCache = null;
    go("#/keys");
  });
  page("Sign in", form);
}

// ---------------------------------------------------------------- key list

const PAGE_SIZE = 10;
const pager = { markers: [undefined], index: 0 };

async function keysPage() {
  const err = errorBox("keys-error");
  const filter = h("input", { type: "search", placeholder: "Filter by alias or key ID" });
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "responsive", id: "keys-table" },
    h("caption", { class: "visually-hidden" }, "Customer managed keys"),
    h("thead", {}, h("tr", {}, ["Aliases", "Key ID", "Status", "Key spec", "Key usage", "Origin"].map((t) => h("th", { scope: "col" }, t)))),
    tbody,
  );
  const prev = h("button", { type: "button", id: "page-prev" }, "Previous page");
  const next = h("button", { type: "button", id: "page-next" }, "Next page");
  const pageLabel = h("span", { id: "page-number", "aria-live": "polite" });
  page(
    "Customer managed keys",
    banner(),
    h("div", { class: "toolbar" },
      h("div", { class: "grow" }, field("keys-filter", "Filter keys", filter)),
      h("a", { class: "button primary", href: "#/create", id: "create-key" }, "Create key")),
    err,
    table,
    h("div", { class: "pager" }, prev, pageLabel, next),
    api("ListKeys", "ListAliases", "DescribeKey"),
  );
  let rows = [];
  const draw = () => {
    const q = filter.value.trim().toLowerCase();
    const shown = rows.filter((r) => !q || r.text.includes(q));
    tbody.replaceChildren(
      ...(shown.length ? shown.map((r) => r.tr) : [h("tr", {}, h("td", { colspan: 6 }, q ? "No keys match the filter." : "No customer managed keys."))]),
    );
  };
  filter.addEventListener("input", draw);
  const load = async () => {
    clearError(err);
    tbody.replaceChildren(h("tr", {}, h("td", { colspan: 6 }, "Loading…")));
    try {
      const marker = pager.markers[pager.index];
      const [r, aliases] = await Promise.all([
        call("ListKeys", marker ? { Limit: PAGE_SIZE, Marker: marker } : { Limit: PAGE_SIZE }),
        listAll("ListAliases", {}, "Aliases"),
      ]);
      const byKey = {};
      for (const a of aliases) if (a.TargetKeyId) (byKey[a.TargetKeyId] ||= []).push(a.AliasName.replace(/^alias\//, ""));
      const mds = await Promise.all((r.Keys || []).map((k) => call("DescribeKey", { KeyId: k.KeyId }).then((d) => d.KeyMetadata)));
      rows = mds
        .filter((md) => md.KeyManager !== "AWS")
        .map((md) => {
          const names = byKey[md.KeyId] || [];
          const link = (text) => h("a", { href: `#/keys/${md.KeyId}` }, text);
          const tr = h(
            "tr",
            { "data-key-id": md.KeyId },
            h("td", { "data-label": "Aliases" }, names.length ? names.map((n, i) => [i ? ", " : "", link(n)]) : "—"),
            h("td", { "data-label": "Key ID", class: "mono" }, link(md.KeyId)),
            h("td", { "data-label": "Status" }, stateEl(md.KeyState)),
            h("td", { "data-label": "Key spec" }, md.KeySpec),
            h("td", { "data-label": "Key usage" }, usageText(md.KeyUsage)),
            h("td", { "data-label": "Origin" }, originText(md.Origin)),
          );
          return { tr, text: `${names.join(" ")} ${md.KeyId}`.toLowerCase() };
        });
      if (r.Truncated && r.NextMarker) pager.markers[pager.index + 1] = r.NextMarker;
      else pager.markers.length = pager.index + 1;
      prev.disabled = pager.index === 0;
      next.disabled = pager.markers.length <= pager.index + 1;
      pageLabel.textContent = `Page ${pager.index + 1}`;
      draw();
    } catch (e) {
      tbody.replaceChildren();
      showError(err, e);
    }
  };
  prev.addEventListener("click", () => {
    if (pager.index > 0) pager.index--;
    load();
  });
  next.addEventListener("click", () => {
    if (pager.markers.length > pager.index + 1) pager.index++;
    load();
  });
  await load();
}

// ---------------------------------------------------------------- create key wizard

const KEY_SPECS = {
  "Symmetric/ENCRYPT_DECRYPT": ["SYMMETRIC_DEFAULT"],
  "Symmetric/GENERATE_VERIFY_MAC": ["HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512"],
  "Asymmetric/ENCRYPT_DECRYPT": ["RSA_2048", "RSA_3072", "RSA_4096"],
  "Asymmetric/SIGN_VERIFY": ["RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1"],
  "Asymmetric/KEY_AGREEMENT": ["ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"],
};

const STEPS = [
  "Configure key",
  "Add labels",
  "Define key administrative permissions",
  "Define key usage permissions",
  "Review",
];

function newWizard() {
  return {
    step: 0,
    type: "Symmetric",
    usage: "ENCRYPT_DECRYPT",
    spec: "SYMMETRIC_DEFAULT",
    origin: "AWS_KMS",
    ack: false,
    multiRegion: false,
    alias: "",
    description: "",
    tags: [],
    admins: "",
    allowDelete: true,
    users: "",
    accounts: [],
    policyText: null,
    policyEdited: false,
  };
}

let wiz = newWizard();

function lines(text) {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

function validateStep(w) {
  switch (w.step) {
    case 0:
      if (w.origin === "EXTERNAL" && !w.ack)
        return "Select the checkbox to confirm that you understand the security, availability, and durability implications of using an imported key.";
      return null;
    case 1: {
      const a = w.alias.trim().replace(/^alias\//, "");
      if (!a) return "Enter an alias for the key.";
      if (!/^[a-zA-Z0-9/_-]{1,250}$/.test(a))
        return "The alias may contain only alphanumeric characters, forward slashes (/), underscores (_) and dashes (-).";
      if (/^aws\//i.test(a)) return "Aliases that begin with aws/ are reserved for AWS managed keys.";
      if (w.description.length > 8192) return "The description must be at most 8192 characters.";
      for (const t of w.tags) if (!t.key.trim()) return "Every tag needs a tag key (the value may be empty).";
      return null;
    }
    case 2: {
      const bad = lines(w.admins).filter((a) => !PRINCIPAL_ARN.test(a));
      return bad.length ? `Not an IAM user or role ARN: ${bad.join(", ")}` : null;
    }
    case 3: {
      const bad = lines(w.users).filter((a) => !PRINCIPAL_ARN.test(a));
      if (bad.length) return `Not an IAM user or role ARN: ${bad.join(", ")}`;
      const badAcct = w.accounts.map((a) => a.trim()).filter((a) => a && !ACCOUNT_ID.test(a));
      return badAcct.length ? `An AWS account ID is 12 digits: ${badAcct.join(", ")}` : null;
    }
    default:
      return null;
  }
}

async function generatedPolicy(w) {
  const me = await whoAmI();
  if (!me) throw new KmsError("UnknownAccount", "The console could not find the account of this identity.", 0);
  return JSON.stringify(
    consolePolicy({
      partition: me.partition,
      account: me.account,
      keySpec: w.spec,
      keyUsage: w.usage,
      external: w.origin === "EXTERNAL",
      multiRegion: w.multiRegion,
      allowDelete: w.allowDelete,
      admins: lines(w.admins),
      users: lines(w.users),
      accounts: w.accounts.map((a) => a.trim()).filter(Boolean),
    }),
    null,
    2,
  );
}

function wizardStep(w, rerender) {
  switch (w.step) {
    case 0: {
      const usages =
        w.type === "Symmetric"
          ? [["ENCRYPT_DECRYPT", "Encrypt and decrypt"], ["GENERATE_VERIFY_MAC", "Generate and verify MAC"]]
          : [["ENCRYPT_DECRYPT", "Encrypt and decrypt"], ["SIGN_VERIFY", "Sign and verify"], ["KEY_AGREEMENT", "Key agreement"]];
      const specs = KEY_SPECS[`${w.type}/${w.usage}`];
      const setType = (t) => () => {
        w.type = t;
        w.usage = "ENCRYPT_DECRYPT";
        w.spec = KEY_SPECS[`${t}/ENCRYPT_DECRYPT`][0];
        rerender();
      };
      const setUsage = (u) => () => {
        w.usage = u;
        w.spec = KEY_SPECS[`${w.type}/${u}`][0];
        rerender();
      };
      const adv = h(
        "details",
        { open: w.origin !== "AWS_KMS" || w.multiRegion, id: "advanced-options" },
        h("summary", {}, "Advanced options"),
        h("fieldset", {},
          h("legend", {}, "Key material origin"),
          radio("origin", "AWS_KMS", "KMS", w.origin === "AWS_KMS", () => { w.origin = "AWS_KMS"; rerender(); }),
          radio("origin", "EXTERNAL", "External (Import key material)", w.origin === "EXTERNAL", () => { w.origin = "EXTERNAL"; rerender(); }),
          w.origin === "EXTERNAL"
            ? h("div", { class: "warn" },
                checkbox("external-ack", "I understand the security, availability, and durability implications of using an imported key", w.ack, (e) => { w.ack = e.target.checked; }))
            : null),
        h("fieldset", {},
          h("legend", {}, "Regionality"),
          radio("regionality", "single", "Single-Region key", !w.multiRegion, () => { w.multiRegion = false; }),
          radio("regionality", "multi", "Multi-Region key", w.multiRegion, () => { w.multiRegion = true; })),
      );
      return [
        h("fieldset", {}, h("legend", {}, "Key type"),
          radio("key-type", "Symmetric", "Symmetric", w.type === "Symmetric", setType("Symmetric")),
          radio("key-type", "Asymmetric", "Asymmetric", w.type === "Asymmetric", setType("Asymmetric"))),
        h("fieldset", {}, h("legend", {}, "Key usage"), usages.map(([v, t]) => radio("key-usage", v, t, w.usage === v, setUsage(v)))),
        specs.length > 1
          ? field("key-spec", "Key spec", select("key-spec", specs, w.spec, (e) => { w.spec = e.target.value; }))
          : h("p", {}, "Key spec: ", h("strong", { id: "key-spec-fixed" }, w.spec)),
        adv,
      ];
    }
    case 1: {
      const tagRows = h("div", { id: "tags" });
      const drawTags = () => {
        tagRows.replaceChildren(
          ...w.tags.map((t, i) =>
            h("div", { class: "row" },
              h("div", {}, field(`tag-key-${i}`, "Tag key", h("input", { type: "text", value: t.key, oninput: (e) => { t.key = e.target.value; } }))),
              h("div", {}, field(`tag-value-${i}`, "Tag value", h("input", { type: "text", value: t.value, oninput: (e) => { t.value = e.target.value; } }))),
              h("button", { type: "button", onclick: () => { w.tags.splice(i, 1); drawTags(); } }, `Remove tag ${i + 1}`)),
          ),
        );
      };
      drawTags();
      return [
        field("alias", "Alias", h("input", { type: "text", value: w.alias, required: true, oninput: (e) => { w.alias = e.target.value; } }),
          "Required. The console creates alias/<alias> for the key (CreateAlias)."),
        field("description", "Description - optional", h("textarea", { oninput: (e) => { w.description = e.target.value; } }, w.description)),
        h("fieldset", {}, h("legend", {}, "Tags - optional"), tagRows,
          h("button", { type: "button", id: "add-tag", onclick: () => { w.tags.push({ key: "", value: "" }); drawTags(); $(`#tag-key-${w.tags.length - 1}`).focus(); } }, "Add tag")),
      ];
    }
    case 2:
      return [
        field("key-admins", "Key administrators",
          h("textarea", { rows: 4, spellcheck: "false", oninput: (e) => { w.admins = e.target.value; } }, w.admins),
          "IAM users and roles who can administer this key through the KMS API, one ARN per line (arn:aws:iam::111122223333:user/Name or …:role/Name). Keyferry does not list identities yet: type the ARNs."),
        h("fieldset", {}, h("legend", {}, "Key deletion"),
          checkbox("allow-delete", "Allow key administrators to delete this key", w.allowDelete, (e) => { w.allowDelete = e.target.checked; })),
      ];
    case 3: {
      const acctRows = h("div", { id: "other-accounts" });
      const drawAccts = () => {
        acctRows.replaceChildren(
          ...w.accounts.map((a, i) =>
            h("div", { class: "row" },
              h("div", {}, field(`other-account-${i}`, `AWS account ID ${i + 1}`, h("input", { type: "text", inputmode: "numeric", value: a, oninput: (e) => { w.accounts[i] = e.target.value; } }))),
              h("button", { type: "button", onclick: () => { w.accounts.splice(i, 1); drawAccts(); } }, `Remove account ${i + 1}`)),
          ),
        );
      };
      drawAccts();
      return [
        field("key-users", "This account: key users",
          h("textarea", { rows: 4, spellcheck: "false", oninput: (e) => { w.users = e.target.value; } }, w.users),
          "IAM users and roles who can use this key in cryptographic operations, one ARN per line."),
        h("fieldset", {}, h("legend", {}, "Other AWS accounts"),
          h("p", { class: "hint" }, "Adds arn:aws:iam::<account>:root to the key-user statements. Administrators of the other account must still allow its users through IAM policies."),
          acctRows,
          h("button", { type: "button", id: "add-account", onclick: () => { w.accounts.push(""); drawAccts(); $(`#other-account-${w.accounts.length - 1}`).focus(); } }, "Add another AWS account")),
      ];
    }
    default: {
      const policy = h("textarea", { class: "code", spellcheck: "false", "aria-describedby": "policy-hint" });
      const polErr = errorBox("policy-error");
      (async () => {
        try {
          if (w.policyText === null || !w.policyEdited) w.policyText = await generatedPolicy(w);
          policy.value = w.policyText;
        } catch (e) {
          showError(polErr, e);
        }
      })();
      policy.addEventListener("input", () => {
        w.policyText = policy.value;
        w.policyEdited = true;
      });
      const dl = h("dl", { class: "kv", id: "review-summary" },
        h("dt", {}, "Key type"), h("dd", {}, w.type),
        h("dt", {}, "Key usage"), h("dd", {}, usageText(w.usage)),
        h("dt", {}, "Key spec"), h("dd", {}, w.spec),
        h("dt", {}, "Origin"), h("dd", {}, originText(w.origin)),
        h("dt", {}, "Regionality"), h("dd", {}, w.multiRegion ? "Multi-Region" : "Single-Region"),
        h("dt", {}, "Alias"), h("dd", {}, `alias/${w.alias.trim().replace(/^alias\//, "")}`),
        h("dt", {}, "Description"), h("dd", {}, w.description || "—"),
        h("dt", {}, "Tags"), h("dd", {}, w.tags.length ? w.tags.map((t) => `${t.key}=${t.value}`).join(", ") : "—"),
        h("dt", {}, "Key administrators"), h("dd", {}, lines(w.admins).join(", ") || "—"),
        h("dt", {}, "Key users"), h("dd", {}, lines(w.users).join(", ") || "—"),
        h("dt", {}, "Other AWS accounts"), h("dd", {}, w.accounts.filter((a) => a.trim()).join(", ") || "—"));
      return [
        h("section", { class: "panel" }, h("h2", {}, "Key configuration"), dl),
        h("section", { class: "panel" }, h("h2", {}, "Key policy"),
          h("p", { class: "hint", id: "policy-hint" }, "Generated from your choices; you can edit it before Finish. Finish calls CreateKey with this policy."),
          field("key-policy", "Key policy JSON", policy),
          h("button", { type: "button", id: "regenerate-policy", onclick: async () => { w.policyEdited = false; w.policyText = await generatedPolicy(w); policy.value = w.policyText; } }, "Regenerate policy"),
          polErr),
      ];
    }
  }
}

function createPage() {
  const w = wiz;
  const err = errorBox("wizard-error");
  const body = h("div", { id: "wizard-step" });
  const stepsEl = h("ol", { class: "steps", "aria-label": "Steps" });
  const back = h("button", { type: "button", id: "wizard-previous" }, "Previous");
  const next = h("button", { type: "submit", class: "primary", id: "wizard-next" }, "Next");
  const cancel = h("button", { type: "button", id: "wizard-cancel" }, "Cancel");
  const apiLine = h("div");
  const heading = h("h2", { id: "wizard-heading", tabindex: "-1" });
  const form = h("form", { class: "panel", "aria-labelledby": "wizard-heading", novalidate: true }, heading, body, err, h("div", { class: "toolbar" }, cancel, back, next), apiLine);
  const rerender = (focus) => {
    const activeId = document.activeElement && document.activeElement.id;
    stepsEl.replaceChildren(...STEPS.map((s, i) => h("li", { "aria-current": i === w.step ? "step" : null }, s)));
    heading.textContent = `Step ${w.step + 1}: ${STEPS[w.step]}`;
    body.replaceChildren(...wizardStep(w, () => rerender(false)));
    back.hidden = w.step === 0;
    next.textContent = w.step === STEPS.length - 1 ? "Finish" : "Next";
    next.id = w.step === STEPS.length - 1 ? "wizard-finish" : "wizard-next";
    apiLine.replaceChildren(w.step === STEPS.length - 1 ? api("CreateKey", "CreateAlias") : api(w.step === 1 ? "ListAliases (alias check)" : "none yet: Finish sends everything"));
    if (focus) heading.focus();
    else if (activeId && document.getElementById(activeId)) document.getElementById(activeId).focus();
  };
  back.addEventListener("click", () => {
    clearError(err);
    w.step--;
    rerender(true);
  });
  cancel.addEventListener("click", () => {
    wiz = newWizard();
    go("#/keys");
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError(err);
    const problem = validateStep(w);
    if (problem) {
      showError(err, new KmsError("ValidationError", problem, 0));
      return;
    }
    if (w.step === 1) {
      const name = `alias/${w.alias.trim().replace(/^alias\//, "")}`;
      try {
        const aliases = await listAll("ListAliases", {}, "Aliases");
        if (aliases.some((a) => a.AliasName === name)) {
          showError(err, new KmsError("AlreadyExistsException", `An alias with the name ${name} already exists`, 0));
          return;
        }
      } catch (e) {
        showError(err, e);
        return;
      }
    }
    if (w.step < STEPS.length - 1) {
      w.step++;
      rerender(true);
      return;
    }
    next.disabled = true;
    try {
      await finish(w);
    } catch (e) {
      showError(err, e);
    } finally {
      next.disabled = false;
    }
  });
  page("Create key", stepsEl, form);
  rerender(false);
}

async function finish(w) {
  const input = {
    Policy: w.policyText ?? (await generatedPolicy(w)),
    KeySpec: w.spec,
    KeyUsage: w.usage,
    Origin: w.origin,
    MultiRegion: w.multiRegion,
  };
  if (w.description) input.Description = w.description;
  const tags = w.tags.filter((t) => t.key.trim()).map((t) => ({ TagKey: t.key.trim(), TagValue: t.value }));
  if (tags.length) input.Tags = tags;
  const r = await call("CreateKey", input);
  const id = r.KeyMetadata.KeyId;
  const alias = `alias/${w.alias.trim().replace(/^alias\//, "")}`;
  try {
    await call("CreateAlias", { AliasName: alias, TargetKeyId: id });
  } catch (e) {
    flash = { kind: "warn", text: `The key ${id} was created, but its alias was not: ${e}` };
    wiz = newWizard();
    go(`#/keys/${id}`);
    return;
  }
  wiz = newWizard();
  if (w.origin === "EXTERNAL") {
    flash = { kind: "ok", text: `Your KMS key was created with alias ${alias} and is pending import. Download the wrapping public key and import token, then upload the wrapped key material.` };
    go(`#/keys/${id}/import`);
  } else {
    flash = { kind: "ok", text: `Success: your KMS key was created with alias ${alias} and key ID ${id}.` };
    go(`#/keys/${id}`);
  }
}

// ---------------------------------------------------------------- import key material

function stamp(d = new Date()) {
  const p = (n) => String(n).padStart(2, "0");
  return `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}`;
}

function readmeText(keyArn, keyId, st, spec, alg, validTo) {
  return (
    `Import parameters for KMS key ${keyArn}\n\n` +
    `wrappingKey_${keyId}_${st}: the wrapping public key (${spec}), DER-encoded X.509 SubjectPublicKeyInfo.\n` +
    `importToken_${keyId}_${st}: the import token; upload it with the wrapped key material.\n\n` +
    `Wrapping algorithm: ${alg}\n` +
    `Valid until: ${validTo}\n\n` +
    "Wrap the key material with the wrapping key and the algorithm above (e.g.\n" +
    "`keyferry import wrap --parameters ImportParameters.zip ...` writes EncryptedKeyMaterial.bin),\n" +
    "then import EncryptedKeyMaterial.bin together with the import token before the parameters expire.\n"
  );
}

function opensslHint(alg, wrapFile) {
  const md = alg.endsWith("SHA_1") ? "sha1" : "sha256";
  if (alg.startsWith("RSAES_OAEP"))
    return (
      `openssl pkeyutl -encrypt -in PlaintextKeyMaterial.bin -out EncryptedKeyMaterial.bin \\\n` +
      `  -inkey ${wrapFile} -keyform DER -pubin \\\n` +
      `  -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:${md} -pkeyopt rsa_mgf1_md:${md}`
    );
  return (
    "# RSA_AES_KEY_WRAP: wrap the material with a fresh AES-256 key (RFC 5649), then that AES key\n" +
    `# with the wrapping key (RSA-OAEP ${md.toUpperCase()}), and concatenate: keyferry does it for you:\n` +
    `keyferry import wrap --parameters ImportParameters.zip --wrapping-algorithm ${alg} --material <key file>`
  );
}

function downloadBytes(bytes, name, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const a = h("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

async function readFile(input) {
  const f = input.files && input.files[0];
  if (!f) return null;
  return new Uint8Array(await f.arrayBuffer());
}

async function importPage(keyId) {
  let md;
  try {
    md = (await call("DescribeKey", { KeyId: keyId })).KeyMetadata;
  } catch (e) {
    const err = errorBox("import-error");
    page("Import key material", err);
    showError(err, e);
    return;
  }
  const aliases = await listAll("ListAliases", { KeyId: md.KeyId }, "Aliases").catch(() => []);
  const name = aliases.length ? aliases[0].AliasName : md.KeyId;
  const isRsaKey = md.KeySpec.startsWith("RSA_");
  const algs = isRsaKey
    ? ["RSA_AES_KEY_WRAP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1"]
    : ["RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1"];
  const specSel = select("wrapping-key-spec", ["RSA_2048", "RSA_3072", "RSA_4096"], isRsaKey ? "RSA_4096" : "RSA_2048");
  const algSel = select("wrapping-algorithm", algs, algs[0]);
  const dlErr = errorBox("download-error");
  const dlResult = h("div", { id: "download-result", role: "status" });
  const hint = h("pre", { class: "cmd", id: "wrap-command" });
  const updateHint = () => {
    hint.textContent = opensslHint(algSel.value, `wrappingKey_${md.KeyId}_<MMDDHHmm>`);
  };
  algSel.addEventListener("change", updateHint);
  updateHint();
  const dlButton = h("button", { type: "button", class: "primary", id: "download-parameters" }, "Download wrapping public key and import token");
  dlButton.addEventListener("click", async () => {
    clearError(dlErr);
    dlResult.replaceChildren();
    dlButton.disabled = true;
    try {
      const r = await call("GetParametersForImport", {
        KeyId: md.KeyId,
        WrappingAlgorithm: algSel.value,
        WrappingKeySpec: specSel.value,
      });
      const st = stamp();
      const validTo = new Date(Number(r.ParametersValidTo) * 1000).toISOString();
      const files = [
        { name: `wrappingKey_${md.KeyId}_${st}`, data: b64ToBytes(r.PublicKey) },
        { name: `importToken_${md.KeyId}_${st}`, data: b64ToBytes(r.ImportToken) },
        {
          name: `README_${md.KeyId}_${st}.txt`,
          data: new TextEncoder().encode(readmeText(md.Arn, md.KeyId, st, specSel.value, algSel.value, validTo)),
        },
      ];
      downloadBytes(makeZip(files), "ImportParameters.zip", "application/zip");
      hint.textContent = opensslHint(algSel.value, files[0].name);
      dlResult.replaceChildren(
        h("p", {}, "Downloaded ", h("strong", {}, "ImportParameters.zip"), ": ", files.map((f) => f.name).join(", "), "."),
        h("p", {}, `The wrapping public key and import token expire at ${fmtDate(r.ParametersValidTo)}.`),
      );
      announce("ImportParameters.zip downloaded");
    } catch (e) {
      showError(dlErr, e);
    } finally {
      dlButton.disabled = false;
    }
  });

  const matFile = h("input", { type: "file" });
  const tokFile = h("input", { type: "file" });
  const expDate = h("input", { type: "datetime-local", disabled: true });
  const upErr = errorBox("upload-error");
  let expires = false;
  const hasMaterial = md.KeyState !== "PendingImport" || !!md.CurrentKeyMaterialId;
  const importType = select("import-type", [["", "Default (re-import the current key material)"], ["EXISTING_KEY_MATERIAL", "Existing key material (re-import)"], ["NEW_KEY_MATERIAL", "New key material (for on-demand rotation)"]], "");
  const upButton = h("button", { type: "submit", class: "primary", id: "upload-material" }, "Upload key material");
  const upForm = h(
    "form",
    { class: "panel", id: "upload-form", "aria-labelledby": "upload-heading" },
    h("h2", { id: "upload-heading" }, "Step 2: Upload key material"),
    h("fieldset", {}, h("legend", {}, "Encrypted key material and import token"),
      field("wrapped-key-material", "Wrapped key material", matFile, "The file you encrypted with the wrapping public key (e.g. EncryptedKeyMaterial.bin)."),
      field("import-token", "Import token", tokFile, "The importToken_… file from ImportParameters.zip.")),
    h("fieldset", {}, h("legend", {}, "Expiration option"),
      radio("expiration", "none", "Key material doesn't expire", true, () => { expires = false; expDate.disabled = true; }),
      radio("expiration", "expires", "Key material expires", false, () => { expires = true; expDate.disabled = false; expDate.focus(); }),
      field("expiration-date", "Key material expires at (UTC)", expDate)),
    hasMaterial ? field("import-type", "Import type", importType) : null,
    upButton,
    upErr,
    api("ImportKeyMaterial"),
  );
  upForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError(upErr);
    const material = await readFile(matFile);
    const token = await readFile(tokFile);
    if (!material || !token) {
      showError(upErr, new KmsError("ValidationError", "Choose the wrapped key material file and the import token file.", 0));
      return;
    }
    const input = {
      KeyId: md.KeyId,
      EncryptedKeyMaterial: bytesToB64(material),
      ImportToken: bytesToB64(token),
      ExpirationModel: expires ? "KEY_MATERIAL_EXPIRES" : "KEY_MATERIAL_DOES_NOT_EXPIRE",
    };
    if (expires) {
      if (!expDate.value) {
        showError(upErr, new KmsError("ValidationError", "Choose the date and time at which the key material expires.", 0));
        return;
      }
      input.ValidTo = Math.floor(Date.parse(`${expDate.value}Z`) / 1000);
    }
    if (hasMaterial && importType.value) input.ImportType = importType.value;
    upButton.disabled = true;
    try {
      await call("ImportKeyMaterial", input);
      flash = { kind: "ok", text: `Key material imported. Your KMS key ${name} is ready to use.` };
      go(`#/keys/${md.KeyId}`);
    } catch (e) {
      showError(upErr, e);
    } finally {
      upButton.disabled = false;
    }
  });

  page(
    "Import key material",
    banner(),
    h("p", {}, "Key: ", h("a", { href: `#/keys/${md.KeyId}`, id: "import-key-link" }, name), " ", h("span", { class: "mono" }, md.KeyId), " — ", stateEl(md.KeyState), " — key spec ", md.KeySpec),
    h("section", { class: "panel", "aria-labelledby": "download-heading" },
      h("h2", { id: "download-heading" }, "Step 1: Download wrapping public key and import token"),
      field("wrapping-key-spec", "Wrapping key spec", specSel),
      field("wrapping-algorithm", "Wrapping algorithm", algSel,
        isRsaKey ? "RSA private keys are too large for RSA-OAEP alone: wrap them with an RSA_AES_KEY_WRAP algorithm." : "RSAES_OAEP_SHA_256 is recommended for symmetric and HMAC key material."),
      dlButton,
      dlErr,
      dlResult,
      h("p", { class: "hint" }, "Then wrap your key material with the wrapping key, for example:"),
      hint,
      api("GetParametersForImport")),
    upForm,
    h("p", {}, h("a", { href: `#/keys/${md.KeyId}` }, "Cancel: do this later from the key's page")),
  );
}

// ---------------------------------------------------------------- key page

function dialog(id, title, content, onSave, saveLabel = "Save changes") {
  const err = errorBox(`${id}-error`);
  const save = h("button", { type: "submit", class: "primary", id: `${id}-save` }, saveLabel);
  const cancel = h("button", { type: "button", id: `${id}-cancel` }, "Cancel");
  const form = h("form", { method: "dialog", novalidate: true }, h("h2", { id: `${id}-title` }, title), content, err, h("div", { class: "toolbar" }, cancel, save));
  const dlg = h("dialog", { id, "aria-labelledby": `${id}-title` }, form);
  cancel.addEventListener("click", () => dlg.close());
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError(err);
    save.disabled = true;
    try {
      if ((await onSave()) !== false) dlg.close();
    } catch (e) {
      showError(err, e);
    } finally {
      save.disabled = false;
    }
  });
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  return { dlg, err };
}

async function keyPage(keyId) {
  let md, aliases, policyText, tags, rotations = null;
  const loadErr = errorBox("key-error");
  try {
    md = (await call("DescribeKey", { KeyId: keyId })).KeyMetadata;
    [aliases, policyText, tags] = await Promise.all([
      listAll("ListAliases", { KeyId: md.KeyId }, "Aliases"),
      call("GetKeyPolicy", { KeyId: md.KeyId, PolicyName: "default" }).then((r) => r.Policy),
      listAll("ListResourceTags", { KeyId: md.KeyId }, "Tags"),
    ]);
    if (md.Origin === "EXTERNAL" || (md.KeySpec === "SYMMETRIC_DEFAULT" && md.Origin === "AWS_KMS"))
      rotations = await listAll("ListKeyRotations", { KeyId: md.KeyId, IncludeKeyMaterial: "ALL_KEY_MATERIAL" }, "Rotations").catch(() => null);
  } catch (e) {
    page("KMS key", loadErr);
    showError(loadErr, e);
    return;
  }
  const partition = md.Arn.split(":")[1];
  const account = md.Arn.split(":")[4];
  const title = aliases.length ? aliases[0].AliasName.replace(/^alias\//, "") : md.KeyId;
  const reload = (text) => {
    if (text) flash = { kind: "ok", text };
    go(`#/keys/${md.KeyId}`);
  };
  const actErr = errorBox("actions-error");
  const act = (label, id, fn, cls) =>
    h("button", { type: "button", id, class: cls, onclick: async (ev) => {
      clearError(actErr);
      ev.target.disabled = true;
      try { await fn(); } catch (e) { showError(actErr, e); } finally { ev.target.disabled = false; }
    } }, label);

  const actions = h("div", { class: "toolbar", role: "toolbar", "aria-label": "Key actions" });
  if (md.KeyState === "Enabled") actions.append(act("Disable key", "disable-key", async () => { await call("DisableKey", { KeyId: md.KeyId }); reload("The key was disabled."); }));
  if (md.KeyState === "Disabled") actions.append(act("Enable key", "enable-key", async () => { await call("EnableKey", { KeyId: md.KeyId }); reload("The key was enabled."); }));
  if (md.KeyState === "PendingDeletion")
    actions.append(act("Cancel key deletion", "cancel-deletion", async () => {
      await call("CancelKeyDeletion", { KeyId: md.KeyId });
      reload("Key deletion was canceled. The key is disabled: enable it to use it.");
    }));
  else
    actions.append(h("button", { type: "button", id: "schedule-deletion", class: "danger", onclick: () => scheduleDeletion(md, reload) }, "Schedule key deletion"));
  if (md.Origin === "EXTERNAL" && md.KeyState !== "PendingDeletion")
    actions.append(h("a", { class: "button", id: "import-material", href: `#/keys/${md.KeyId}/import` }, md.KeyState === "PendingImport" ? "Import key material" : "Re-import key material"));
  actions.append(api("EnableKey", "DisableKey", "ScheduleKeyDeletion", "CancelKeyDeletion"));

  // General configuration
  const copyStatus = h("span", { id: "copy-status", role: "status" });
  const arnCode = h("code", { id: "key-arn" }, md.Arn);
  const copy = h("button", { type: "button", id: "copy-arn", "aria-label": "Copy ARN" }, "Copy");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(md.Arn);
      copyStatus.textContent = "ARN copied";
    } catch {
      const sel = getSelection();
      const range = document.createRange();
      range.selectNodeContents(arnCode);
      sel.removeAllRanges();
      sel.addRange(range);
      copyStatus.textContent = document.execCommand("copy") ? "ARN copied" : "ARN selected: press Ctrl+C to copy";
    }
  });
  const descErr = errorBox("description-error");
  const descDd = h("dd", { id: "key-description" }, md.Description || "—");
  const editDesc = h("button", { type: "button", class: "link", id: "edit-description", onclick: () => {
    const ta = h("textarea", { id: "description-input" }, md.Description || "");
    const save = h("button", { type: "button", class: "primary", id: "description-save", onclick: async () => {
      clearError(descErr);
      try { await call("UpdateKeyDescription", { KeyId: md.KeyId, Description: ta.value }); reload("The description was updated."); } catch (e) { showError(descErr, e); }
    } }, "Save description");
    descDd.replaceChildren(h("label", { for: "description-input" }, "Description"), ta, save, descErr);
    ta.focus();
  } }, "Edit");
  const general = h("section", { class: "panel", id: "general-configuration", "aria-labelledby": "general-heading" },
    h("h2", { id: "general-heading" }, "General configuration"),
    h("dl", { class: "kv" },
      h("dt", {}, "Alias"), h("dd", { id: "key-alias" }, aliases.length ? aliases.map((a) => a.AliasName).join(", ") : "—"),
      h("dt", {}, "ARN"), h("dd", {}, arnCode, " ", copy, " ", copyStatus),
      h("dt", {}, "Key ID"), h("dd", { class: "mono", id: "key-id" }, md.KeyId),
      h("dt", {}, "Description ", editDesc), descDd,
      h("dt", {}, "Status"), h("dd", { id: "key-state" }, stateEl(md.KeyState)),
      h("dt", {}, "Creation date"), h("dd", {}, fmtDate(md.CreationDate)),
      md.DeletionDate ? [h("dt", {}, "Scheduled deletion date"), h("dd", { id: "deletion-date" }, fmtDate(md.DeletionDate))] : null,
      h("dt", {}, "Regionality"), h("dd", {}, md.MultiRegion ? `Multi-Region (${md.MultiRegionConfiguration?.MultiRegionKeyType || "PRIMARY"})` : "Single-Region"),
      md.Origin === "EXTERNAL"
        ? [h("dt", {}, "Expiration date"), h("dd", { id: "key-expiration" },
            md.ExpirationModel === "KEY_MATERIAL_EXPIRES" ? fmtDate(md.ValidTo) : md.ExpirationModel === "KEY_MATERIAL_DOES_NOT_EXPIRE" ? "Key material doesn't expire" : "—")]
        : null),
    api("DescribeKey", "UpdateKeyDescription"));

  // Key policy
  const policySection = h("section", { class: "panel", id: "key-policy", "aria-labelledby": "policy-heading" });
  let policyView = false;
  const drawPolicy = () => {
    let parsed = null;
    try { parsed = JSON.parse(policyText); } catch { parsed = null; }
    const toggle = h("button", { type: "button", id: "policy-toggle", onclick: () => { policyView = !policyView; drawPolicy(); $("#policy-toggle").focus(); } },
      policyView ? "Switch to default view" : "Switch to policy view");
    if (policyView || !parsed) {
      const ta = h("textarea", { class: "code", id: "policy-json", spellcheck: "false" }, JSON.stringify(parsed ?? policyText, null, 2));
      if (!parsed) ta.value = policyText;
      const perr = errorBox("policy-save-error");
      const save = h("button", { type: "button", class: "primary", id: "policy-save", onclick: async () => {
        clearError(perr);
        try { await call("PutKeyPolicy", { KeyId: md.KeyId, PolicyName: "default", Policy: ta.value }); reload("The key policy was saved."); } catch (e) { showError(perr, e); }
      } }, "Save changes");
      policySection.replaceChildren(h("h2", { id: "policy-heading" }, "Key policy"), toggle,
        h("label", { for: "policy-json" }, "Key policy (JSON)"), ta, save, perr, api("GetKeyPolicy", "PutKeyPolicy"));
      return;
    }
    const view = defaultView(parsed, account);
    const list = (id, items, empty, remove) =>
      h("ul", { class: "plain", id }, items.length ? items.map((p) => h("li", {}, h("span", { class: "mono" }, p), remove ? [" ", remove(p)] : null)) : h("li", {}, empty));
    const accErr = errorBox("accounts-error");
    const removeAcct = (acct) => h("button", { type: "button", class: "danger", "aria-label": `Remove account ${acct}`, onclick: async () => {
      clearError(accErr);
      const p = editOtherAccount(parsed, partition, acct, md.KeySpec, md.KeyUsage, false);
      try { await call("PutKeyPolicy", { KeyId: md.KeyId, PolicyName: "default", Policy: JSON.stringify(p) }); reload(`Account ${acct} was removed from the key policy.`); } catch (e) { showError(accErr, e); }
    } }, "Remove");
    const addAccts = h("button", { type: "button", id: "add-other-accounts", onclick: () => otherAccountsDialog(md, parsed, partition, reload) }, "Add other AWS accounts");
    policySection.replaceChildren(
      h("h2", { id: "policy-heading" }, "Key policy"), toggle,
      h("h3", {}, "Key administrators"), list("policy-admins", view.admins, "None: administration is delegated to IAM policies of the account."),
      h("h3", {}, "Key users"), list("policy-users", view.users, "None"),
      h("section", { id: "other-aws-accounts", "aria-labelledby": "other-accounts-heading" },
        h("h3", { id: "other-accounts-heading" }, "Other AWS accounts"),
        list("policy-accounts", view.accounts, "None", removeAcct), addAccts, accErr),
      api("GetKeyPolicy", "PutKeyPolicy"));
  };
  drawPolicy();

  // Cryptographic configuration
  const algs = [
    ["Encryption algorithms", md.EncryptionAlgorithms],
    ["Signing algorithms", md.SigningAlgorithms],
    ["MAC algorithms", md.MacAlgorithms],
    ["Key agreement algorithms", md.KeyAgreementAlgorithms],
  ].filter(([, v]) => v && v.length);
  const cryptoSection = h("section", { class: "panel", id: "cryptographic-configuration", "aria-labelledby": "crypto-heading" },
    h("h2", { id: "crypto-heading" }, "Cryptographic configuration"),
    h("dl", { class: "kv" },
      h("dt", {}, "Key type"), h("dd", {}, keyType(md)),
      h("dt", {}, "Key spec"), h("dd", { id: "crypto-key-spec" }, md.KeySpec),
      h("dt", {}, "Key usage"), h("dd", {}, usageText(md.KeyUsage)),
      h("dt", {}, "Origin"), h("dd", { id: "crypto-origin" }, originText(md.Origin)),
      algs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v.join(", "))])));

  // Key material
  let material = null;
  if (md.Origin === "EXTERNAL" || md.KeySpec === "SYMMETRIC_DEFAULT") {
    const matErr = errorBox("material-error");
    const rows = (rotations || []).map((r) =>
      h("tr", { "data-material-id": r.KeyMaterialId || "" },
        h("td", { "data-label": "Key material ID", class: "mono" }, r.KeyMaterialId || "—"),
        h("td", { "data-label": "State" }, r.KeyMaterialState || "—"),
        h("td", { "data-label": "Import state" }, r.ImportState || "—"),
        h("td", { "data-label": "Expiration" }, r.ExpirationModel === "KEY_MATERIAL_EXPIRES" ? fmtDate(r.ValidTo) : r.ExpirationModel ? "Doesn't expire" : "—"),
        h("td", { "data-label": "Rotation date" }, r.RotationDate ? `${fmtDate(r.RotationDate)} (${r.RotationType || ""})` : "—")));
    const delBtn = md.Origin === "EXTERNAL" && md.KeyState !== "PendingImport" && md.KeyState !== "PendingDeletion"
      ? h("button", { type: "button", class: "danger", id: "delete-material", onclick: () => dialog("delete-material-dialog", "Delete key material",
          [h("p", {}, "The key becomes unusable (Pending import) until you import the same key material again."),
           checkbox("delete-material-confirm", "Confirm that you want to delete the key material now", false)],
          async () => {
            if (!$("#delete-material-confirm").checked) throw new KmsError("ValidationError", "Select the confirmation checkbox.", 0);
            await call("DeleteImportedKeyMaterial", { KeyId: md.KeyId });
            reload("The key material was deleted. The key is pending import.");
          }, "Delete key material") }, "Delete key material")
      : null;
    const rotateBtn = md.KeySpec === "SYMMETRIC_DEFAULT" && md.KeyState === "Enabled"
      ? h("button", { type: "button", id: "rotate-now", onclick: async () => {
          clearError(matErr);
          try { await call("RotateKeyOnDemand", { KeyId: md.KeyId }); reload("On-demand rotation started."); } catch (e) { showError(matErr, e); }
        } }, "Rotate key material now")
      : null;
    material = h("section", { class: "panel", id: "key-material", "aria-labelledby": "material-heading" },
      h("h2", { id: "material-heading" }, md.Origin === "EXTERNAL" ? "Key material and rotations" : "Key rotation"),
      h("p", {}, "Current key material ID: ", h("span", { class: "mono", id: "current-material-id" }, md.CurrentKeyMaterialId || "—")),
      rotations && rotations.length
        ? h("table", { class: "responsive", id: "materials-table" },
            h("thead", {}, h("tr", {}, ["Key material ID", "State", "Import state", "Expiration", "Rotation date"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, rows))
        : h("p", {}, "No key material yet."),
      h("div", { class: "toolbar" },
        md.Origin === "EXTERNAL" && md.KeyState !== "PendingDeletion" ? h("a", { class: "button", href: `#/keys/${md.KeyId}/import`, id: "material-import" }, "Import key material") : null,
        delBtn, rotateBtn),
      matErr,
      api("ListKeyRotations", "GetParametersForImport", "ImportKeyMaterial", "DeleteImportedKeyMaterial", "RotateKeyOnDemand"));
  }

  // Aliases
  const aliasErr = errorBox("alias-error");
  const newAlias = h("input", { type: "text", placeholder: "my-alias" });
  const aliasSection = h("section", { class: "panel", id: "aliases", "aria-labelledby": "aliases-heading" },
    h("h2", { id: "aliases-heading" }, "Aliases"),
    h("ul", { class: "plain", id: "alias-list" },
      aliases.length ? aliases.map((a) => h("li", {}, h("span", { class: "mono" }, a.AliasName), " ",
        h("button", { type: "button", class: "danger", "aria-label": `Delete alias ${a.AliasName}`, onclick: async () => {
          clearError(aliasErr);
          try { await call("DeleteAlias", { AliasName: a.AliasName }); reload(`Alias ${a.AliasName} was deleted.`); } catch (e) { showError(aliasErr, e); }
        } }, "Delete"))) : h("li", {}, "No aliases")),
    h("form", { class: "row", onsubmit: async (ev) => {
      ev.preventDefault();
      clearError(aliasErr);
      const n = `alias/${newAlias.value.trim().replace(/^alias\//, "")}`;
      try { await call("CreateAlias", { AliasName: n, TargetKeyId: md.KeyId }); reload(`Alias ${n} was created.`); } catch (e) { showError(aliasErr, e); }
    } }, h("div", {}, field("new-alias", "New alias", newAlias)), h("button", { type: "submit", id: "create-alias" }, "Create alias")),
    aliasErr, api("ListAliases", "CreateAlias", "DeleteAlias"));

  // Tags
  const tagErr = errorBox("tag-error");
  const tk = h("input", { type: "text" });
  const tv = h("input", { type: "text" });
  const tagSection = h("section", { class: "panel", id: "tags-section", "aria-labelledby": "tags-heading" },
    h("h2", { id: "tags-heading" }, "Tags"),
    tags.length
      ? h("table", { class: "responsive", id: "tags-table" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Tag key"), h("th", { scope: "col" }, "Tag value"), h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
          h("tbody", {}, tags.map((t) => h("tr", {},
            h("td", { "data-label": "Tag key" }, t.TagKey), h("td", { "data-label": "Tag value" }, t.TagValue),
            h("td", { "data-label": "Actions" }, h("button", { type: "button", class: "danger", "aria-label": `Remove tag ${t.TagKey}`, onclick: async () => {
              clearError(tagErr);
              try { await call("UntagResource", { KeyId: md.KeyId, TagKeys: [t.TagKey] }); reload(`Tag ${t.TagKey} was removed.`); } catch (e) { showError(tagErr, e); }
            } }, "Remove"))))))
      : h("p", {}, "No tags"),
    h("form", { class: "row", onsubmit: async (ev) => {
      ev.preventDefault();
      clearError(tagErr);
      try { await call("TagResource", { KeyId: md.KeyId, Tags: [{ TagKey: tk.value, TagValue: tv.value }] }); reload(`Tag ${tk.value} was saved.`); } catch (e) { showError(tagErr, e); }
    } }, h("div", {}, field("new-tag-key", "Tag key", tk)), h("div", {}, field("new-tag-value", "Tag value", tv)), h("button", { type: "submit", id: "add-key-tag" }, "Add tag")),
    tagErr, api("ListResourceTags", "TagResource", "UntagResource"));

  page(title, banner(), h("p", {}, h("a", { href: "#/keys" }, "← Customer managed keys")), actions, actErr, general, policySection, cryptoSection, material, aliasSection, tagSection);
}

function scheduleDeletion(md, reload) {
  const days = h("input", { type: "number", min: 7, max: 30, value: 30, required: true });
  const confirm = h("input", { type: "checkbox", id: "deletion-confirm" });
  const label = h("label", { for: "deletion-confirm", class: "inline" });
  const sync = () => { label.textContent = `Confirm that you want to schedule this key for deletion after a ${days.value}-day waiting period.`; };
  days.addEventListener("input", sync);
  sync();
  dialog("schedule-deletion-dialog", "Schedule key deletion",
    [h("p", {}, "After the waiting period the key and its material are deleted, and data encrypted under it can no longer be decrypted. During the waiting period the key cannot be used; you can cancel the deletion."),
     field("waiting-period", "Waiting period (in days)", days, "Between 7 and 30 days."),
     h("div", { class: "choice" }, confirm, label),
     api("ScheduleKeyDeletion")],
    async () => {
      if (!confirm.checked) throw new KmsError("ValidationError", "Select the confirmation checkbox.", 0);
      const r = await call("ScheduleKeyDeletion", { KeyId: md.KeyId, PendingWindowInDays: Number(days.value) });
      reload(`The key is scheduled for deletion on ${fmtDate(r.DeletionDate)}.`);
    }, "Schedule deletion");
}

function otherAccountsDialog(md, parsed, partition, reload) {
  const rows = h("div", { id: "account-rows" });
  const ids = [""];
  const draw = () => {
    rows.replaceChildren(...ids.map((v, i) =>
      h("div", { class: "row" },
        h("div", {}, field(`account-id-${i}`, `AWS account ID ${i + 1}`, h("input", { type: "text", inputmode: "numeric", value: v, oninput: (e) => { ids[i] = e.target.value; } }))),
        ids.length > 1 ? h("button", { type: "button", onclick: () => { ids.splice(i, 1); draw(); } }, `Remove account ${i + 1}`) : null)));
  };
  draw();
  dialog("other-accounts-dialog", "Other AWS accounts",
    [h("p", { class: "hint" }, "Enter 12-digit AWS account IDs. Each account's root principal is added to the “Allow use of the key” and “Allow attachment of persistent resources” statements."),
     rows,
     h("button", { type: "button", id: "add-another-account", onclick: () => { ids.push(""); draw(); $(`#account-id-${ids.length - 1}`).focus(); } }, "Add another AWS account"),
     api("PutKeyPolicy")],
    async () => {
      const accts = ids.map((s) => s.trim()).filter(Boolean);
      const bad = accts.filter((a) => !ACCOUNT_ID.test(a));
      if (!accts.length || bad.length) throw new KmsError("ValidationError", `An AWS account ID is 12 digits${bad.length ? `: ${bad.join(", ")}` : ""}.`, 0);
      let p = parsed;
      for (const a of accts) p = editOtherAccount(p, partition, a, md.KeySpec, md.KeyUsage, true);
      await call("PutKeyPolicy", { KeyId: md.KeyId, PolicyName: "default", Policy: JSON.stringify(p) });
      reload(`Other AWS accounts added: ${accts.join(", ")}.`);
    });
  $("#account-id-0").focus();
}

// ---------------------------------------------------------------- router

async function render() {
  const creds = loadCredentials();
  const session = $("#session");
  session.hidden = !creds;
  if (creds) {
    $("#session-region").textContent = creds.region;
    $("#session-akid").textContent = creds.accessKeyId;
  }
  for (const d of document.querySelectorAll("dialog")) d.close();
  const hash = location.hash || "#/keys";
  if (!creds) return signInPage();
  let m;
  if ((m = /^#\/keys\/([^/]+)\/import$/.exec(hash))) return importPage(decodeURIComponent(m[1]));
  if ((m = /^#\/keys\/([^/]+)$/.exec(hash))) return keyPage(decodeURIComponent(m[1]));
  if (hash === "#/create") return createPage();
  pager.index = 0;
  pager.markers = [undefined];
  return keysPage();
}

window.addEventListener("hashchange", () => {
  render().catch((e) => console.error(e));
});

document.addEventListener("DOMContentLoaded", () => {
  $("#signout").addEventListener("click", () => {
    clearCredentials();
    accountCache = null;
    wiz = newWizard();
    go("#/keys");
    render();
  });
  render().catch((e) => console.error(e));
});
