//! Every `PolicyError` message text (listed in README.md).

pub(crate) const NOT_JSON: &str = "Policy document is not valid JSON.";
pub(crate) const NOT_OBJECT: &str = "Policy document must be a JSON object.";
pub(crate) const VERSION_TYPE: &str = "Policy element Version must be a string.";
pub(crate) const ID_TYPE: &str = "Policy element Id must be a string.";
pub(crate) const NO_STATEMENT: &str = "Policy document has no Statement.";
pub(crate) const STATEMENT_TYPE: &str =
    "Policy element Statement must be an object or a list of objects.";
pub(crate) const SID_TYPE: &str = "Policy element Sid must be a string.";
pub(crate) const NO_EFFECT: &str = "Policy contains a statement with no Effect.";
pub(crate) const BAD_EFFECT: &str =
    "Policy contains a statement with an invalid Effect (it must be Allow or Deny).";
pub(crate) const NO_PRINCIPAL: &str = "Policy contains a statement with no Principal.";
pub(crate) const IDENTITY_PRINCIPAL: &str = "Policy contains a statement with a Principal or NotPrincipal, which an identity-based policy must not have.";
pub(crate) const TRUST_RESOURCE: &str = "Policy contains a statement with a Resource or NotResource, which a trust policy must not have.";
pub(crate) const INVALID_PRINCIPALS: &str =
    "Policy contains a statement with one or more invalid principals.";
pub(crate) const CONDITION_TYPE: &str =
    "Policy element Condition must map each operator to an object of condition keys.";
pub(crate) const CONDITION_VALUE_TYPE: &str =
    "Policy contains a condition value that is not a string, number or boolean.";

pub(crate) fn invalid_version(v: &str) -> String {
    format!("Policy has an invalid Version: {v}.")
}
pub(crate) fn unknown_element(e: &str) -> String {
    format!("Policy has an unknown element: {e}.")
}
pub(crate) fn unknown_statement_element(e: &str) -> String {
    format!("Policy contains a statement with an unknown element: {e}.")
}
pub(crate) fn both(a: &str, b: &str) -> String {
    format!("Policy contains a statement with both {a} and {b}.")
}
pub(crate) fn list_type(e: &str) -> String {
    format!("Policy element {e} must be a string or a list of strings.")
}
pub(crate) fn missing(e: &str) -> String {
    format!("Policy contains a statement with no {e}.")
}
pub(crate) fn unknown_operator(op: &str) -> String {
    format!("Policy has an unknown condition operator: {op}.")
}
