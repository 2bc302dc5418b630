// Key policies as the AWS console writes them (Id key-consolepolicy-3): the statements
// "Enable IAM User Permissions", "Allow access for Key Administrators", "Allow use of the key"
// and "Allow attachment of persistent resources", with the action lists of the AWS KMS
// Developer Guide ("Default key policy"). Also: reading a policy back into the console's
// default view, and adding/removing other AWS accounts.

export const SID_ROOT = "Enable IAM User Permissions";
export const SID_ADMINS = "Allow access for Key Administrators";
export const SID_USE = "Allow use of the key";
export const SID_GRANTS = "Allow attachment of persistent resources";

const ADMIN_ACTIONS = [
  "kms:Create*",
  "kms:Describe*",
  "kms:Enable*",
  "kms:List*",
  "kms:Put*",
  "kms:Update*",
  "kms:Revoke*",
  "kms:Disable*",
  "kms:Get*",
  "kms:Delete*",
  "kms:TagResource",
  "kms:UntagResource",
];

/** IAM user or role ARN (what key administrators and key users are). */
export const PRINCIPAL_ARN = /^arn:aws[a-z-]*:iam::\d{12}:(user|role)\/[\w+=,.@\/-]{1,512}$/;
/** A 12-digit AWS account ID. */
export const ACCOUNT_ID = /^\d{12}$/;

export function accountRoot(partition, account) {
  return `arn:${partition}:iam::${account}:root`;
}

/** The "Allow use of the key" actions for a key type (Developer Guide table). */
export function useActions(keySpec, keyUsage) {
  if (keySpec.startsWith("HMAC_")) return ["kms:DescribeKey", "kms:GenerateMac", "kms:VerifyMac"];
  if (keySpec === "SYMMETRIC_DEFAULT")
    return ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"];
  if (keyUsage === "SIGN_VERIFY")
    return ["kms:DescribeKey", "kms:GetPublicKey", "kms:Sign", "kms:Verify"];
  if (keyUsage === "KEY_AGREEMENT")
    return ["kms:DescribeKey", "kms:GetPublicKey", "kms:DeriveSharedSecret"];
  return ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:DescribeKey", "kms:GetPublicKey"];
}

export function adminActions({ external, multiRegion, allowDelete }) {
  const a = [...ADMIN_ACTIONS];
  if (external) a.push("kms:ImportKeyMaterial");
  if (multiRegion) a.push("kms:ReplicateKey", "kms:UpdatePrimaryRegion");
  if (allowDelete) a.push("kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion");
  return a;
}

function useStatement(principals, keySpec, keyUsage) {
  return {
    Sid: SID_USE,
    Effect: "Allow",
    Principal: { AWS: principals },
    Action: useActions(keySpec, keyUsage),
    Resource: "*",
  };
}

function grantsStatement(principals) {
  return {
    Sid: SID_GRANTS,
    Effect: "Allow",
    Principal: { AWS: principals },
    Action: ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
    Resource: "*",
    Condition: { Bool: { "kms:GrantIsForAWSResource": true } },
  };
}

/**
 * The console's policy for a new key.
 * o: {partition, account, keySpec, keyUsage, external, multiRegion, allowDelete,
 *     admins: [arn], users: [arn], accounts: [12 digits]}
 */
export function consolePolicy(o) {
  const st = [
    {
      Sid: SID_ROOT,
      Effect: "Allow",
      Principal: { AWS: accountRoot(o.partition, o.account) },
      Action: "kms:*",
      Resource: "*",
    },
  ];
  if (o.admins.length)
    st.push({
      Sid: SID_ADMINS,
      Effect: "Allow",
      Principal: { AWS: [...o.admins] },
      Action: adminActions(o),
      Resource: "*",
    });
  const users = [...o.users, ...o.accounts.map((a) => accountRoot(o.partition, a))];
  if (users.length) {
    st.push(useStatement(users, o.keySpec, o.keyUsage));
    st.push(grantsStatement(users));
  }
  return { Version: "2012-10-17", Id: "key-consolepolicy-3", Statement: st };
}

function principalsOf(stmt) {
  const p = stmt && stmt.Principal && stmt.Principal.AWS;
  if (!p) return [];
  return Array.isArray(p) ? p : [p];
}

function statements(policy) {
  const s = policy.Statement;
  return Array.isArray(s) ? s : s ? [s] : [];
}

/** The default view: {admins, users, accounts} read from the console's statements. */
export function defaultView(policy, ownAccount) {
  const st = statements(policy);
  const bySid = (sid) => st.find((s) => s.Sid === sid);
  const admins = principalsOf(bySid(SID_ADMINS));
  const users = [];
  const accounts = [];
  for (const p of principalsOf(bySid(SID_USE))) {
    const m = /^arn:aws[a-z-]*:iam::(\d{12}):root$/.exec(p) || /^(\d{12})$/.exec(p);
    if (m && m[1] !== ownAccount) accounts.push(m[1]);
    else users.push(p);
  }
  return { admins, users, accounts };
}

/**
 * The policy with `account`'s root added to (add=true) or removed from (add=false) both
 * key-user statements; creates them (with the key type's actions) when absent.
 */
export function editOtherAccount(policy, partition, account, keySpec, keyUsage, add) {
  const p = JSON.parse(JSON.stringify(policy));
  const st = statements(p);
  p.Statement = st;
  const arn = accountRoot(partition, account);
  const matches = (x) => x === arn || x === account;
  for (const [sid, make] of [
    [SID_USE, (ps) => useStatement(ps, keySpec, keyUsage)],
    [SID_GRANTS, (ps) => grantsStatement(ps)],
  ]) {
    const i = st.findIndex((s) => s.Sid === sid);
    if (i < 0) {
      if (add) st.push(make([arn]));
      continue;
    }
    const s = st[i];
    let ps = principalsOf(s).filter((x) => !matches(x));
    if (add) ps.push(arn);
    if (ps.length === 0) st.splice(i, 1);
    else s.Principal = { ...(s.Principal || {}), AWS: ps };
  }
  return p;
}
