//! The bits of Python semantics blueprint tags rely on: truthiness, `str()`/`repr()`
//! of values, `%`-formatting (`!Format`) and deepmerge's `always_merger` (`!Enumerate`
//! with `MAP`, context merging).

use serde_json::{Map, Value};

/// Python's `bool(value)`.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn float_repr(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

fn number_str(n: &serde_json::Number) -> String {
    match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) => i.to_string(),
        (None, Some(u), _) => u.to_string(),
        (None, None, Some(f)) => float_repr(f),
        _ => n.to_string(),
    }
}

/// Python's `str(value)`.
pub(crate) fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr(value)`.
pub(crate) fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => number_str(n),
        Value::String(s) => {
            let quote = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::with_capacity(s.len() + 2);
            out.push(quote);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == quote => {
                        out.push('\\');
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
            out.push(quote);
            out
        }
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(py_repr).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(o) => {
            let items: Vec<String> = o
                .iter()
                .map(|(k, v)| format!("{}: {}", py_repr(&Value::String(k.clone())), py_repr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// The number of a `%d`/`%f` argument (bools are ints in Python).
fn as_number(v: &Value, conv: char) -> Result<f64, String> {
    match v {
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("%{conv} format: invalid number")),
        other => Err(format!(
            "%{conv} format: a real number is required, not {}",
            type_name(other)
        )),
    }
}

fn pad(body: String, width: usize, left: bool, zero: bool) -> String {
    let len = body.chars().count();
    if len >= width {
        return body;
    }
    let fill = width - len;
    if left {
        format!("{body}{}", " ".repeat(fill))
    } else if zero {
        let (sign, digits) = match body.strip_prefix(['-', '+', ' ']) {
            Some(rest) => (body.get(..1).unwrap_or(""), rest),
            None => ("", body.as_str()),
        };
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else {
        format!("{}{body}", " ".repeat(fill))
    }
}

/// Python's `format % tuple(args)` for the conversions `s r a d i u f F e E x X o %`
/// with flags `- 0 + space`, a width and a precision.
pub(crate) fn percent_format(format: &str, args: &[Value]) -> Result<String, String> {
    let mut out = String::with_capacity(format.len());
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut left, mut zero, mut plus, mut space) = (false, false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' => plus = true,
                ' ' => space = true,
                '(' => return Err("format requires a mapping".into()),
                _ => break,
            }
            chars.next();
        }
        let mut width = 0usize;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            width = width
                .saturating_mul(10)
                .saturating_add(d as usize)
                .min(4096);
            chars.next();
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = 0usize;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                p = p.saturating_mul(10).saturating_add(d as usize).min(4096);
                chars.next();
            }
            precision = Some(p);
        }
        let Some(conv) = chars.next() else {
            return Err("incomplete format".into());
        };
        if conv == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            return Err("not enough arguments for format string".into());
        };
        let sign = |negative: bool| {
            if negative {
                "-"
            } else if plus {
                "+"
            } else if space {
                " "
            } else {
                ""
            }
        };
        let body = match conv {
            's' | 'r' | 'a' => {
                let s = if conv == 's' {
                    py_str(arg)
                } else {
                    py_repr(arg)
                };
                match precision {
                    Some(p) => s.chars().take(p).collect(),
                    None => s,
                }
            }
            'd' | 'i' | 'u' => {
                let n = as_number(arg, conv)?.trunc();
                format!("{}{:.0}", sign(n < 0.0), n.abs())
            }
            'f' | 'F' => {
                let n = as_number(arg, conv)?;
                let p = precision.unwrap_or(6);
                format!("{}{:.*}", sign(n < 0.0), p, n.abs())
            }
            'e' | 'E' => {
                let n = as_number(arg, conv)?;
                let p = precision.unwrap_or(6);
                let s = format!("{:.*e}", p, n.abs());
                // Python writes the exponent with a sign and at least two digits.
                let (mantissa, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
                let exp: i64 = exp.parse().unwrap_or(0);
                let e = if conv == 'e' { 'e' } else { 'E' };
                let exp_sign = if exp < 0 { '-' } else { '+' };
                format!("{}{mantissa}{e}{exp_sign}{:02}", sign(n < 0.0), exp.abs())
            }
            'x' | 'X' | 'o' => {
                let n = match arg {
                    Value::Bool(b) => i128::from(*b),
                    Value::Number(n) if n.is_i64() || n.is_u64() => n
                        .as_i64()
                        .map(i128::from)
                        .or_else(|| n.as_u64().map(i128::from))
                        .unwrap_or(0),
                    other => {
                        return Err(format!(
                            "%{conv} format: an integer is required, not {}",
                            type_name(other)
                        ));
                    }
                };
                let digits = match conv {
                    'x' => format!("{:x}", n.unsigned_abs()),
                    'X' => format!("{:X}", n.unsigned_abs()),
                    _ => format!("{:o}", n.unsigned_abs()),
                };
                format!("{}{digits}", sign(n < 0))
            }
            other => {
                return Err(format!("unsupported format character '{other}'"));
            }
        };
        let numeric = !matches!(conv, 's' | 'r' | 'a');
        out.push_str(&pad(body, width, left, zero && numeric && !left));
    }
    if args.next().is_some() {
        return Err("not all arguments converted during string formatting".into());
    }
    Ok(out)
}

/// deepmerge's `always_merger.merge(base, other)`: mappings merge recursively, lists
/// append, anything else is replaced.
pub(crate) fn deep_merge(base: &mut Value, other: Value) {
    match (base, other) {
        (Value::Object(b), Value::Object(o)) => merge_maps(b, o),
        (Value::Array(b), Value::Array(o)) => b.extend(o),
        (b, o) => *b = o,
    }
}

/// [`deep_merge`] on two mappings.
pub(crate) fn merge_maps(base: &mut Map<String, Value>, other: Map<String, Value>) {
    for (k, v) in other {
        match base.get_mut(&k) {
            Some(existing) => deep_merge(existing, v),
            None => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_like_python() {
        let f = |fmt: &str, args: Value| {
            percent_format(fmt, args.as_array().map(Vec::as_slice).unwrap_or(&[]))
        };
        assert_eq!(f("my-policy-%s", json!(["x"])).unwrap(), "my-policy-x");
        assert_eq!(f("%s/%s", json!([1, true])).unwrap(), "1/True");
        assert_eq!(f("%d%%", json!([3.9])).unwrap(), "3%");
        assert_eq!(f("%05d", json!([-42])).unwrap(), "-0042");
        assert_eq!(f("%.2f", json!([1.005])).unwrap(), "1.00");
        assert_eq!(f("%r", json!(["it's"])).unwrap(), "\"it's\"");
        assert_eq!(f("%s", json!([null])).unwrap(), "None");
        assert_eq!(f("%s", json!([["a", 1]])).unwrap(), "['a', 1]");
        assert_eq!(f("%x", json!([255])).unwrap(), "ff");
        assert_eq!(f("%e", json!([12345.678])).unwrap(), "1.234568e+04");
        assert_eq!(f("%-4s|", json!(["a"])).unwrap(), "a   |");
        assert!(f("%s %s", json!(["a"])).is_err());
        assert!(f("%s", json!(["a", "b"])).is_err());
        assert!(f("%d", json!(["a"])).is_err());
        assert!(f("%(x)s", json!(["a"])).is_err());
        assert!(f("%", json!([])).is_err());
    }

    #[test]
    fn truthiness_and_merge() {
        assert!(!truthy(&json!(0)));
        assert!(!truthy(&json!("")));
        assert!(!truthy(&json!([])));
        assert!(truthy(&json!({"a": 1})));
        let mut a = json!({"a": {"x": 1}, "l": [1]});
        deep_merge(&mut a, json!({"a": {"y": 2}, "l": [2], "s": 3}));
        assert_eq!(a, json!({"a": {"x": 1, "y": 2}, "l": [1, 2], "s": 3}));
    }
}
