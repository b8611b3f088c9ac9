//! CEL expressions over an identity, with a native fast path.
//!
//! Most policy expressions are simple: `department == "Sales"`,
//! `location in ["Berlin", "Paris"]`, `email`. Those are compiled to a small
//! native form and never touch the CEL interpreter; everything else runs
//! through `cel`. Both paths give the same answers (a property test checks).

use std::sync::Arc;

use cel::common::ast::{Expr as Ast, IdedExpr, LiteralValue, operators};
use cel::{Context, Env, ExecutionError, Program};
use chrono::{DateTime, NaiveTime, Utc};
use prov_core::{Identity, Value};

use crate::policy::AttrType;

/// The variables an expression can always use besides declared attributes.
pub(crate) const BUILTINS: &[&str] = &["id", "state", "manager", "start_date", "end_date"];

/// A literal in a native condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Lit {
    fn matches(&self, v: Option<&Value>) -> bool {
        match (self, v) {
            (Lit::Str(a), Some(Value::String(b))) => a == b,
            (Lit::Int(a), Some(Value::Int(b))) => a == b,
            (Lit::Bool(a), Some(Value::Bool(b))) => a == b,
            _ => false,
        }
    }
}

/// A condition the resolver evaluates without CEL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fast {
    Const(bool),
    /// A bool attribute used as a condition.
    Truthy(String),
    Eq(String, Lit),
    Ne(String, Lit),
    In(String, Vec<Lit>),
    /// `"x" in list_attribute`
    Contains(String, Lit),
    And(Vec<Fast>),
    Or(Vec<Fast>),
    Not(Box<Fast>),
}

/// A variable lookup that sees built-ins and attributes as CEL does.
pub(crate) fn lookup<'a>(
    identity: &'a Identity,
    scratch: &'a mut Option<Value>,
    name: &str,
) -> Option<&'a Value> {
    match name {
        "id" => {
            *scratch = Some(Value::String(identity.id.as_str().to_owned()));
            scratch.as_ref()
        }
        "state" => {
            *scratch = Some(Value::String(identity.state.as_str().to_owned()));
            scratch.as_ref()
        }
        "manager" => {
            *scratch = identity
                .manager
                .as_ref()
                .map(|m| Value::String(m.as_str().to_owned()));
            scratch.as_ref()
        }
        "start_date" => {
            *scratch = identity
                .start_date
                .map(|d| Value::Timestamp(d.and_time(NaiveTime::MIN).and_utc()));
            scratch.as_ref()
        }
        "end_date" => {
            *scratch = identity
                .end_date
                .map(|d| Value::Timestamp(d.and_time(NaiveTime::MIN).and_utc()));
            scratch.as_ref()
        }
        _ => identity.attributes.get(name),
    }
}

impl Fast {
    pub(crate) fn eval(&self, identity: &Identity) -> bool {
        let mut scratch = None;
        match self {
            Fast::Const(b) => *b,
            Fast::Truthy(name) => {
                matches!(
                    lookup(identity, &mut scratch, name),
                    Some(Value::Bool(true))
                )
            }
            Fast::Eq(name, lit) => lit.matches(lookup(identity, &mut scratch, name)),
            Fast::Ne(name, lit) => !lit.matches(lookup(identity, &mut scratch, name)),
            Fast::In(name, lits) => {
                let v = lookup(identity, &mut scratch, name);
                lits.iter().any(|l| l.matches(v))
            }
            Fast::Contains(name, lit) => match lookup(identity, &mut scratch, name) {
                Some(Value::List(items)) => items.iter().any(|i| lit.matches(Some(i))),
                _ => false,
            },
            Fast::And(parts) => parts.iter().all(|p| p.eval(identity)),
            Fast::Or(parts) => parts.iter().any(|p| p.eval(identity)),
            Fast::Not(inner) => !inner.eval(identity),
        }
    }

    /// The `(attribute, values)` this condition requires one of, when it is
    /// an equality (or a conjunction starting with one): what the rule index
    /// is keyed by.
    pub(crate) fn index_key(&self) -> Option<(&str, Vec<&str>)> {
        match self {
            Fast::Eq(name, Lit::Str(v)) if !BUILTINS.contains(&name.as_str()) => {
                Some((name, vec![v]))
            }
            Fast::In(name, lits) if !BUILTINS.contains(&name.as_str()) => {
                let values: Option<Vec<&str>> = lits
                    .iter()
                    .map(|l| match l {
                        Lit::Str(s) => Some(s.as_str()),
                        _ => None,
                    })
                    .collect();
                values.map(|v| (name.as_str(), v))
            }
            Fast::And(parts) => parts.first().and_then(Fast::index_key),
            _ => None,
        }
    }
}

/// A compiled expression: native when simple, CEL otherwise.
#[derive(Debug)]
pub(crate) enum Compiled {
    Fast(Fast),
    /// A template that copies an attribute.
    Attr(String),
    /// A template that is a constant.
    Const(Value),
    Cel(Program),
}

/// The CEL environment every policy expression runs in: the standard
/// library plus the strings extension (`lowerAscii`, `replace`, `split`, ...).
pub(crate) fn env() -> Result<Arc<Env>, String> {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(env))
}

/// Parses an expression. `condition` selects the native condition form.
pub(crate) fn compile(
    env: &Env,
    source: &str,
    condition: bool,
) -> Result<(Compiled, Vec<String>), String> {
    let program = env.compile(source).map_err(|e| {
        let text = e.to_string();
        // cel prefixes each error with `ERROR: <input>:`; the policy error says where.
        text.lines()
            .map(|l| l.trim_start_matches("ERROR: <input>:").trim())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let mut vars: Vec<String> = program
        .references()
        .variables()
        .into_iter()
        .map(str::to_owned)
        .collect();
    vars.sort();
    vars.dedup();
    let root = program.expression();
    let compiled = if condition {
        match fast_condition(root) {
            Some(f) => Compiled::Fast(f),
            None => Compiled::Cel(program),
        }
    } else {
        match &root.expr {
            Ast::Ident(name) => Compiled::Attr(name.clone()),
            Ast::Literal(LiteralValue::String(s)) => {
                Compiled::Const(Value::String(s.inner().to_owned()))
            }
            _ => Compiled::Cel(program),
        }
    };
    Ok((compiled, vars))
}

fn literal(e: &IdedExpr) -> Option<Lit> {
    match &e.expr {
        Ast::Literal(LiteralValue::String(s)) => Some(Lit::Str(s.inner().to_owned())),
        Ast::Literal(LiteralValue::Int(i)) => Some(Lit::Int(*i.inner())),
        Ast::Literal(LiteralValue::Boolean(b)) => Some(Lit::Bool(*b.inner())),
        _ => None,
    }
}

fn ident(e: &IdedExpr) -> Option<String> {
    match &e.expr {
        Ast::Ident(name) => Some(name.clone()),
        _ => None,
    }
}

fn fast_condition(e: &IdedExpr) -> Option<Fast> {
    match &e.expr {
        Ast::Literal(LiteralValue::Boolean(b)) => Some(Fast::Const(*b.inner())),
        Ast::Ident(name) => Some(Fast::Truthy(name.clone())),
        Ast::Call(call) if call.target.is_none() => {
            let args = &call.args;
            match (call.func_name.as_str(), args.as_slice()) {
                (operators::EQUALS | operators::NOT_EQUALS, [a, b]) => {
                    let (name, lit) = match (ident(a), literal(b)) {
                        (Some(n), Some(l)) => (n, l),
                        _ => (ident(b)?, literal(a)?),
                    };
                    if call.func_name == operators::EQUALS {
                        Some(Fast::Eq(name, lit))
                    } else {
                        Some(Fast::Ne(name, lit))
                    }
                }
                (operators::IN, [a, b]) => {
                    if let (Some(name), Ast::List(list)) = (ident(a), &b.expr) {
                        let lits: Option<Vec<Lit>> = list.elements.iter().map(literal).collect();
                        return Some(Fast::In(name, lits?));
                    }
                    Some(Fast::Contains(ident(b)?, literal(a)?))
                }
                (operators::LOGICAL_AND, _) => {
                    let mut parts = Vec::new();
                    for a in args {
                        match fast_condition(a)? {
                            Fast::And(inner) => parts.extend(inner),
                            f => parts.push(f),
                        }
                    }
                    Some(Fast::And(parts))
                }
                (operators::LOGICAL_OR, _) => {
                    let parts: Option<Vec<Fast>> = args.iter().map(fast_condition).collect();
                    Some(Fast::Or(parts?))
                }
                (operators::LOGICAL_NOT, [a]) => Some(Fast::Not(Box::new(fast_condition(a)?))),
                _ => None,
            }
        }
        _ => None,
    }
}

pub(crate) fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Int(i) => cel::Value::Int(*i),
        Value::Timestamp(t) => cel::Value::Timestamp(t.fixed_offset()),
        Value::Bytes(b) => cel::Value::Bytes(Arc::new(b.clone())),
        Value::List(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        _ => cel::Value::Null,
    }
}

pub(crate) fn from_cel(v: &cel::Value) -> Result<Value, String> {
    Ok(match v {
        cel::Value::String(s) => Value::String(s.as_str().to_owned()),
        cel::Value::Bool(b) => Value::Bool(*b),
        cel::Value::Int(i) => Value::Int(*i),
        cel::Value::UInt(u) => {
            Value::Int(i64::try_from(*u).map_err(|_| format!("{u} is too large for an int"))?)
        }
        cel::Value::Timestamp(t) => Value::Timestamp(t.with_timezone(&Utc)),
        cel::Value::Bytes(b) => Value::Bytes(b.as_ref().clone()),
        cel::Value::List(items) => {
            Value::List(items.iter().map(from_cel).collect::<Result<Vec<_>, _>>()?)
        }
        cel::Value::Null => Value::Null,
        other => {
            return Err(format!(
                "an expression gave {other:?}, which is not an attribute value"
            ));
        }
    })
}

/// A zero value of each declared type, for type-checking by evaluation.
pub(crate) fn sample(ty: AttrType) -> Value {
    match ty {
        AttrType::String => Value::String("Sample".to_owned()),
        AttrType::Bool => Value::Bool(false),
        AttrType::Int => Value::Int(0),
        AttrType::Timestamp => Value::Timestamp(DateTime::<Utc>::UNIX_EPOCH),
        AttrType::Bytes => Value::Bytes(Vec::new()),
        AttrType::List => Value::List(Vec::new()),
    }
}

/// Whether an evaluation error means the expression is ill-typed (rather
/// than failing on the sample's particular values).
pub(crate) fn is_type_error(e: &ExecutionError) -> bool {
    matches!(
        e,
        ExecutionError::InvalidArgumentCount { .. }
            | ExecutionError::UnsupportedTargetType { .. }
            | ExecutionError::NotSupportedAsMethod { .. }
            | ExecutionError::UnexpectedType { .. }
            | ExecutionError::NoSuchOverload(_)
            | ExecutionError::UndeclaredReference(_)
            | ExecutionError::ValuesNotComparable(..)
            | ExecutionError::UnsupportedBinaryOperator(..)
    )
}

/// Evaluates a CEL program over an identity. Attributes the identity
/// lacks are bound to `null`, so `department == "Sales"` is false
/// for someone without a department rather than an error.
pub(crate) fn run_cel(
    env: &Arc<Env>,
    program: &Program,
    identity: &Identity,
    vars: &[String],
) -> Result<Value, ExecutionError> {
    let mut ctx = Context::with_env(Arc::clone(env));
    for name in vars {
        let mut scratch = None;
        let value = lookup(identity, &mut scratch, name)
            .map(to_cel)
            .unwrap_or(cel::Value::Null);
        ctx.add_variable_from_value(name.clone(), value);
    }
    let out = program.execute(&ctx)?;
    from_cel(&out).map_err(|msg| ExecutionError::FunctionError {
        function: "result".to_owned(),
        message: msg,
    })
}
