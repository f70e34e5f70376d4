//! Rule-based segments: a small expression language over user features.
//!
//! ```text
//! monetary >= p80(monetary) and recency_days <= 30
//!   and urbanicity == 'urban' and main_device in ['mobile', 'app']
//! ```
//!
//! Grammar (keywords are case-insensitive, `and` binds tighter than `or`):
//!
//! ```text
//! expr    := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | compare
//! compare := value (("==" | "!=" | "<" | "<=" | ">" | ">=") value
//!                   | "not"? "in" "[" literal ("," literal)* "]")?
//! value   := number | 'string' | "string" | true | false | name
//!          | pNN "(" name ")" | mean "(" name ")" | median "(" name ")" | "(" expr ")"
//! ```
//!
//! Names are numeric features (compared as numbers) or categorical ones (strings, compared
//! with `==`, `!=` and `in` only). `pNN(x)` is the NN-th percentile of `x` over the
//! population (linear interpolation, like numpy), `mean(x)` and `median(x)` likewise. A
//! missing categorical value equals nothing: `x == 'a'` and `x in [...]` are false, `x != 'a'`
//! and `x not in [...]` true. Errors carry the column; [`RuleError::render`] draws a caret.
//! The parser never panics: input length and nesting depth are bounded.

use serde::{Deserialize, Serialize};

/// Longest accepted expression, in bytes.
pub const MAX_LEN: usize = 10_000;
/// Deepest accepted nesting of parentheses and `not`.
pub const MAX_DEPTH: usize = 64;

/// A syntax or type error at a byte range of the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// What is wrong.
    pub message: String,
    /// Byte offset of the start of the offending text.
    pub start: usize,
    /// Byte offset just past it (≥ start).
    pub end: usize,
}

impl RuleError {
    fn at(start: usize, end: usize, message: impl Into<String>) -> Self {
        Self { message: message.into(), start, end: end.max(start) }
    }

    /// 1-based column (in characters) of the error within `src`.
    pub fn column(&self, src: &str) -> usize {
        src.get(..self.start.min(src.len())).map_or(1, |s| s.chars().count() + 1)
    }

    /// The expression with a caret line under the offending text:
    ///
    /// ```text
    /// monetary >= p80(monetry)
    ///                 ^^^^^^^ unknown feature "monetry" (did you mean "monetary"?)
    /// ```
    pub fn render(&self, src: &str) -> String {
        let col = self.column(src) - 1;
        let width = src.get(self.start.min(src.len())..self.end.min(src.len())).map_or(1, |s| s.chars().count().max(1));
        let line: String = src.chars().map(|c| if c == '\n' || c == '\t' { ' ' } else { c }).collect();
        format!("{line}\n{}{} {}", " ".repeat(col), "^".repeat(width), self.message)
    }
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.start)
    }
}

impl std::error::Error for RuleError {}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Ident(String),
    Op(CmpOp),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    And,
    Or,
    Not,
    In,
    Bool(bool),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }

    /// Applies the operator to numbers.
    pub fn num(self, a: f64, b: f64) -> bool {
        match self {
            Self::Eq => a == b,
            Self::Ne => a != b,
            Self::Lt => a < b,
            Self::Le => a <= b,
            Self::Gt => a > b,
            Self::Ge => a >= b,
        }
    }
}

fn lex(src: &str) -> Result<Vec<(Tok, usize, usize)>, RuleError> {
    if src.len() > MAX_LEN {
        return Err(RuleError::at(MAX_LEN, src.len(), format!("the expression is longer than {MAX_LEN} bytes")));
    }
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let tok = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            b'[' => Tok::LBracket,
            b']' => Tok::RBracket,
            b',' => Tok::Comma,
            b'=' | b'!' | b'<' | b'>' => {
                let two = b.get(i + 1) == Some(&b'=');
                let op = match (c, two) {
                    (b'=', true) => CmpOp::Eq,
                    (b'!', true) => CmpOp::Ne,
                    (b'<', true) => CmpOp::Le,
                    (b'>', true) => CmpOp::Ge,
                    (b'<', false) => CmpOp::Lt,
                    (b'>', false) => CmpOp::Gt,
                    (b'=', false) => return Err(RuleError::at(i, i + 1, "use == to compare")),
                    _ => return Err(RuleError::at(i, i + 1, "use != or `not` (a lone ! is not an operator)")),
                };
                i += if two { 2 } else { 1 };
                out.push((Tok::Op(op), start, i));
                continue;
            }
            b'\'' | b'"' => {
                let close = b[i + 1..].iter().position(|x| *x == c).map(|p| i + 1 + p);
                let Some(close) = close else {
                    return Err(RuleError::at(i, b.len(), "this string is never closed"));
                };
                let s = src.get(i + 1..close).unwrap_or_default().to_owned();
                i = close + 1;
                out.push((Tok::Str(s), start, i));
                continue;
            }
            b'0'..=b'9' | b'.' | b'-' => {
                let mut j = i + 1;
                while j < b.len()
                    && (b[j].is_ascii_digit()
                        || b[j] == b'.'
                        || b[j] == b'_'
                        || ((b[j] == b'e' || b[j] == b'E')
                            && b.get(j + 1).is_some_and(|n| n.is_ascii_digit() || *n == b'-'))
                        || (b[j] == b'-' && (b[j - 1] == b'e' || b[j - 1] == b'E')))
                {
                    j += 1;
                }
                let text: String = src.get(i..j).unwrap_or_default().chars().filter(|c| *c != '_').collect();
                let v: f64 =
                    text.parse().ok().filter(|v: &f64| v.is_finite()).ok_or_else(|| {
                        RuleError::at(i, j, format!("{:?} is not a number", src.get(i..j).unwrap_or("")))
                    })?;
                i = j;
                out.push((Tok::Num(v), start, i));
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                let word = src.get(i..j).unwrap_or_default();
                i = j;
                let tok = match word.to_ascii_lowercase().as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    "in" => Tok::In,
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    _ => Tok::Ident(word.to_owned()),
                };
                out.push((tok, start, i));
                continue;
            }
            b'&' | b'|' => {
                let word = if c == b'&' { "and" } else { "or" };
                return Err(RuleError::at(i, i + 1, format!("write `{word}` instead of {:?}", c as char)));
            }
            _ => {
                let ch = src.get(i..).and_then(|s| s.chars().next()).unwrap_or('?');
                return Err(RuleError::at(i, i + ch.len_utf8(), format!("unexpected character {ch:?}")));
            }
        };
        i += 1;
        out.push((tok, start, i));
    }
    Ok(out)
}

/// A literal in the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Lit {
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
}

/// The parsed, untyped expression (names not yet resolved).
#[derive(Debug, Clone, PartialEq)]
pub enum Ast {
    /// A literal.
    Lit(Lit),
    /// A feature name.
    Name(String),
    /// `pNN(name)` (q in 0..=100), `mean(name)` (q = -1) or `median(name)` (q = 50).
    Stat(StatFn, String),
    /// A comparison.
    Cmp(CmpOp, Box<Spanned>, Box<Spanned>),
    /// `x in [..]` or `x not in [..]` (negated).
    In(Box<Spanned>, Vec<Lit>, bool),
    /// `a and b and ...`.
    And(Vec<Spanned>),
    /// `a or b or ...`.
    Or(Vec<Spanned>),
    /// `not a`.
    Not(Box<Spanned>),
}

/// A population statistic of a feature.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StatFn {
    /// Percentile 0–100.
    Percentile(f64),
    /// Arithmetic mean.
    Mean,
}

/// An expression with its byte range.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    /// The expression.
    pub ast: Ast,
    /// Start byte.
    pub start: usize,
    /// End byte.
    pub end: usize,
}

struct Parser<'a> {
    src: &'a str,
    toks: &'a [(Tok, usize, usize)],
    pos: usize,
    len: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }

    fn here(&self) -> (usize, usize) {
        self.toks.get(self.pos).map_or((self.len, self.len), |t| (t.1, t.2))
    }

    fn prev_end(&self) -> usize {
        self.pos.checked_sub(1).and_then(|p| self.toks.get(p)).map_or(0, |t| t.2)
    }

    fn err<T>(&self, msg: impl Into<String>) -> Result<T, RuleError> {
        let (s, e) = self.here();
        Err(RuleError::at(s, e, msg))
    }

    /// "expected X, found Y" at the current token.
    fn unexpected<T>(&self, what: &str) -> Result<T, RuleError> {
        let (s, e) = self.here();
        let found = match self.src.get(s..e) {
            Some(t) if !t.is_empty() => format!("`{t}`"),
            _ => "the end".to_owned(),
        };
        Err(RuleError::at(s, e, format!("expected {what}, found {found}")))
    }

    fn expect(&mut self, t: &Tok, what: &str) -> Result<(), RuleError> {
        if self.peek() == Some(t) {
            self.pos += 1;
            Ok(())
        } else {
            self.unexpected(what)
        }
    }

    fn or(&mut self) -> Result<Spanned, RuleError> {
        let first = self.and()?;
        let start = first.start;
        let mut v = vec![first];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            v.push(self.and()?);
        }
        Ok(if v.len() == 1 { v.remove(0) } else { Spanned { ast: Ast::Or(v), start, end: self.prev_end() } })
    }

    fn and(&mut self) -> Result<Spanned, RuleError> {
        let first = self.unary()?;
        let start = first.start;
        let mut v = vec![first];
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            v.push(self.unary()?);
        }
        Ok(if v.len() == 1 { v.remove(0) } else { Spanned { ast: Ast::And(v), start, end: self.prev_end() } })
    }

    fn deeper(&mut self) -> Result<(), RuleError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err(format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Spanned, RuleError> {
        if self.peek() == Some(&Tok::Not) {
            let start = self.here().0;
            self.pos += 1;
            self.deeper()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Spanned { ast: Ast::Not(Box::new(inner)), start, end: self.prev_end() });
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Spanned, RuleError> {
        let left = self.value()?;
        let start = left.start;
        match self.peek() {
            Some(Tok::Op(op)) => {
                let op = *op;
                self.pos += 1;
                let right = self.value()?;
                if let Some(Tok::Op(_)) = self.peek() {
                    return self.err("comparisons cannot be chained; join them with `and`");
                }
                Ok(Spanned { ast: Ast::Cmp(op, Box::new(left), Box::new(right)), start, end: self.prev_end() })
            }
            Some(Tok::In) | Some(Tok::Not) => {
                let negated = self.peek() == Some(&Tok::Not);
                if negated {
                    self.pos += 1;
                    if self.peek() != Some(&Tok::In) {
                        return self.unexpected("`in` after `not` here");
                    }
                }
                self.pos += 1;
                self.expect(&Tok::LBracket, "[ to start the list")?;
                let mut list = Vec::new();
                loop {
                    let lit = match self.peek() {
                        Some(Tok::Num(v)) => Lit::Num(*v),
                        Some(Tok::Str(s)) => Lit::Str(s.clone()),
                        Some(Tok::Bool(b)) => Lit::Bool(*b),
                        Some(Tok::RBracket) if list.is_empty() => return self.unexpected("a value in the list"),
                        _ => return self.unexpected("a number or a quoted string"),
                    };
                    self.pos += 1;
                    list.push(lit);
                    match self.peek() {
                        Some(Tok::Comma) => self.pos += 1,
                        Some(Tok::RBracket) => {
                            self.pos += 1;
                            break;
                        }
                        _ => return self.unexpected(", or ]"),
                    }
                }
                Ok(Spanned { ast: Ast::In(Box::new(left), list, negated), start, end: self.prev_end() })
            }
            _ => Ok(left),
        }
    }

    fn value(&mut self) -> Result<Spanned, RuleError> {
        let (start, end) = self.here();
        let Some(tok) = self.peek().cloned() else {
            return self.unexpected("a value");
        };
        self.pos += 1;
        let ast = match tok {
            Tok::Num(v) => Ast::Lit(Lit::Num(v)),
            Tok::Str(s) => Ast::Lit(Lit::Str(s)),
            Tok::Bool(b) => Ast::Lit(Lit::Bool(b)),
            Tok::LParen => {
                self.deeper()?;
                let inner = self.or()?;
                self.depth -= 1;
                self.expect(&Tok::RParen, ")")?;
                return Ok(Spanned { ast: inner.ast, start, end: self.prev_end() });
            }
            Tok::Ident(name) if self.peek() == Some(&Tok::LParen) => {
                let lower = name.to_ascii_lowercase();
                let stat = match lower.as_str() {
                    "mean" => StatFn::Mean,
                    "median" => StatFn::Percentile(50.0),
                    p if p.starts_with('p') => match p[1..].parse::<f64>() {
                        Ok(q) if (0.0..=100.0).contains(&q) && p.len() <= 4 => StatFn::Percentile(q),
                        _ => {
                            return Err(RuleError::at(
                                start,
                                end,
                                format!("unknown function {name:?} (use p0 to p100, mean or median)"),
                            ));
                        }
                    },
                    _ => {
                        return Err(RuleError::at(
                            start,
                            end,
                            format!("unknown function {name:?} (use p0 to p100, mean or median)"),
                        ));
                    }
                };
                self.pos += 1;
                let arg = match self.peek() {
                    Some(Tok::Ident(a)) => a.clone(),
                    _ => return self.unexpected("a feature name"),
                };
                self.pos += 1;
                self.expect(&Tok::RParen, ")")?;
                Ast::Stat(stat, arg)
            }
            Tok::Ident(name) => Ast::Name(name),
            _ => {
                self.pos -= 1;
                return self.unexpected("a value (a number, a 'string', a feature name or a percentile)");
            }
        };
        Ok(Spanned { ast, start, end: self.prev_end() })
    }
}

/// Parses an expression (syntax only; names are resolved by [`compile`]).
pub fn parse(src: &str) -> Result<Spanned, RuleError> {
    let toks = lex(src)?;
    let mut p = Parser { src, toks: &toks, pos: 0, len: src.len(), depth: 0 };
    let e = p.or()?;
    if p.pos < toks.len() {
        return p.err("expected `and`, `or` or the end of the rule");
    }
    Ok(e)
}

/// What a name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Numeric feature column.
    Num(usize),
    /// Categorical feature column.
    Cat(usize),
}

/// The population the rules are evaluated on: names and values.
pub trait Env {
    /// Resolves a name.
    fn column(&self, name: &str) -> Option<Column>;
    /// All names (for "did you mean" hints).
    fn names(&self) -> Vec<String>;
    /// The values of a numeric column over the population (for percentiles).
    fn numeric_values(&self, col: usize) -> Vec<f64>;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum NumE {
    Lit(f64),
    Col(usize),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum StrE {
    Lit(String),
    Col(usize),
}

/// A type-checked rule, ready to evaluate; population statistics are already computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Rule {
    /// `true` or `false` (a rule the checker folded to a constant).
    Const(bool),
    /// Numeric comparison.
    #[doc(hidden)]
    NumCmp(CmpOp, NumExpr, NumExpr),
    /// Categorical equality (`==`/`!=`).
    #[doc(hidden)]
    StrCmp(bool, StrExpr, StrExpr),
    /// Number in a list.
    #[doc(hidden)]
    NumIn(NumExpr, Vec<f64>, bool),
    /// Category in a list.
    #[doc(hidden)]
    StrIn(StrExpr, Vec<String>, bool),
    /// All of.
    And(Vec<Rule>),
    /// Any of.
    Or(Vec<Rule>),
    /// True where the inner rule is false.
    Not(Box<Rule>),
}

/// A numeric operand (public only for serialisation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumExpr(NumE);
/// A categorical operand (public only for serialisation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrExpr(StrE);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ty {
    Num,
    Str,
    Bool,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Num => "a number",
            Ty::Str => "a category",
            Ty::Bool => "a condition",
        }
    }
}

fn percentile(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let pos = q / 100.0 * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

fn suggest(name: &str, env: &dyn Env) -> String {
    let best = env.names().into_iter().map(|n| (edit_distance(name, &n), n)).min_by_key(|(d, _)| *d);
    match best {
        Some((d, n)) if d <= 2.max(name.len() / 3) => format!(" (did you mean {n:?}?)"),
        _ => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

enum Typed {
    Num(NumE),
    Str(StrE),
    Bool(Rule),
}

fn typed(e: &Spanned, env: &dyn Env) -> Result<Typed, RuleError> {
    let err = |m: String| RuleError::at(e.start, e.end, m);
    let resolve =
        |name: &str| env.column(name).ok_or_else(|| err(format!("unknown feature {name:?}{}", suggest(name, env))));
    Ok(match &e.ast {
        Ast::Lit(Lit::Num(v)) => Typed::Num(NumE::Lit(*v)),
        Ast::Lit(Lit::Str(s)) => Typed::Str(StrE::Lit(s.clone())),
        Ast::Lit(Lit::Bool(b)) => Typed::Bool(Rule::Const(*b)),
        Ast::Name(n) => match resolve(n)? {
            Column::Num(c) => Typed::Num(NumE::Col(c)),
            Column::Cat(c) => Typed::Str(StrE::Col(c)),
        },
        Ast::Stat(f, n) => match resolve(n)? {
            Column::Num(c) => {
                let v = env.numeric_values(c);
                Typed::Num(NumE::Lit(match f {
                    StatFn::Percentile(q) => percentile(v, *q),
                    StatFn::Mean => v.iter().sum::<f64>() / v.len().max(1) as f64,
                }))
            }
            Column::Cat(_) => return Err(err(format!("{n:?} is a category; percentiles need a numeric feature"))),
        },
        Ast::Cmp(op, a, b) => {
            let (ta, tb) = (typed(a, env)?, typed(b, env)?);
            match (ta, tb) {
                (Typed::Num(x), Typed::Num(y)) => Typed::Bool(Rule::NumCmp(*op, NumExpr(x), NumExpr(y))),
                (Typed::Str(x), Typed::Str(y)) => match op {
                    CmpOp::Eq | CmpOp::Ne => Typed::Bool(Rule::StrCmp(*op == CmpOp::Ne, StrExpr(x), StrExpr(y))),
                    _ => {
                        return Err(err(format!(
                            "categories can only be compared with == or != (not {})",
                            op.as_str()
                        )));
                    }
                },
                (x, y) => {
                    let (tx, ty) = (ty_of(&x), ty_of(&y));
                    return Err(err(format!("cannot compare {} with {}", tx.name(), ty.name())));
                }
            }
        }
        Ast::In(a, list, neg) => match typed(a, env)? {
            Typed::Num(x) => {
                let mut v = Vec::new();
                for l in list {
                    match l {
                        Lit::Num(n) => v.push(*n),
                        _ => return Err(err("a number is compared with a list that holds non-numbers".into())),
                    }
                }
                Typed::Bool(Rule::NumIn(NumExpr(x), v, *neg))
            }
            Typed::Str(x) => {
                let mut v = Vec::new();
                for l in list {
                    match l {
                        Lit::Str(s) => v.push(s.clone()),
                        _ => return Err(err("a category is compared with a list that holds non-strings".into())),
                    }
                }
                Typed::Bool(Rule::StrIn(StrExpr(x), v, *neg))
            }
            Typed::Bool(_) => return Err(err("`in` needs a feature on its left".into())),
        },
        Ast::And(v) | Ast::Or(v) => {
            let mut out = Vec::with_capacity(v.len());
            for x in v {
                out.push(boolean(x, env)?);
            }
            Typed::Bool(if matches!(e.ast, Ast::And(_)) { Rule::And(out) } else { Rule::Or(out) })
        }
        Ast::Not(x) => Typed::Bool(Rule::Not(Box::new(boolean(x, env)?))),
    })
}

fn ty_of(t: &Typed) -> Ty {
    match t {
        Typed::Num(_) => Ty::Num,
        Typed::Str(_) => Ty::Str,
        Typed::Bool(_) => Ty::Bool,
    }
}

fn boolean(e: &Spanned, env: &dyn Env) -> Result<Rule, RuleError> {
    match typed(e, env)? {
        Typed::Bool(r) => Ok(r),
        t => {
            Err(RuleError::at(e.start, e.end, format!("expected a condition (like x > 1), found {}", ty_of(&t).name())))
        }
    }
}

/// Parses and type-checks `src` against `env`, computing percentiles over its population.
pub fn compile(src: &str, env: &dyn Env) -> Result<Rule, RuleError> {
    boolean(&parse(src)?, env)
}

impl Rule {
    /// Evaluates the rule on one user: numeric features `num`, categorical `cat`.
    pub fn eval(&self, num: &[f64], cat: &[Option<&str>]) -> bool {
        let n = |e: &NumExpr| match &e.0 {
            NumE::Lit(v) => *v,
            NumE::Col(c) => num.get(*c).copied().unwrap_or(f64::NAN),
        };
        let s = |e: &StrExpr| -> Option<String> {
            match &e.0 {
                StrE::Lit(v) => Some(v.clone()),
                StrE::Col(c) => cat.get(*c).copied().flatten().map(str::to_owned),
            }
        };
        match self {
            Rule::Const(b) => *b,
            Rule::NumCmp(op, a, b) => op.num(n(a), n(b)),
            Rule::StrCmp(ne, a, b) => {
                let eq = matches!((s(a), s(b)), (Some(x), Some(y)) if x.eq_ignore_ascii_case(&y));
                eq != *ne
            }
            Rule::NumIn(a, list, neg) => {
                let v = n(a);
                list.contains(&v) != *neg
            }
            Rule::StrIn(a, list, neg) => {
                let hit = s(a).is_some_and(|v| list.iter().any(|x| x.eq_ignore_ascii_case(&v)));
                hit != *neg
            }
            Rule::And(v) => v.iter().all(|r| r.eval(num, cat)),
            Rule::Or(v) => v.iter().any(|r| r.eval(num, cat)),
            Rule::Not(r) => !r.eval(num, cat),
        }
    }
}

/// One named rule segment from a segment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentRule {
    /// The segment's name, unique in the rule file.
    pub name: String,
    /// The condition.
    pub when: String,
    /// Lower runs first when choosing a user's primary segment (default: file order).
    #[serde(default)]
    pub priority: Option<i64>,
    /// Free text shown in summaries.
    #[serde(default)]
    pub description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    struct Pop {
        num: Vec<&'static str>,
        cat: Vec<&'static str>,
        rows: Vec<(Vec<f64>, Vec<Option<&'static str>>)>,
    }

    impl Env for Pop {
        fn column(&self, name: &str) -> Option<Column> {
            self.num
                .iter()
                .position(|n| *n == name)
                .map(Column::Num)
                .or_else(|| self.cat.iter().position(|n| *n == name).map(Column::Cat))
        }
        fn names(&self) -> Vec<String> {
            self.num.iter().chain(&self.cat).map(|s| s.to_string()).collect()
        }
        fn numeric_values(&self, col: usize) -> Vec<f64> {
            self.rows.iter().map(|r| r.0[col]).collect()
        }
    }

    fn pop() -> Pop {
        Pop {
            num: vec!["monetary", "recency_days", "frequency"],
            cat: vec!["urbanicity", "main_device"],
            rows: (0..10)
                .map(|i| {
                    let f = f64::from(i);
                    (
                        vec![f * 10.0, 100.0 - f * 10.0, f % 3.0],
                        vec![
                            [Some("urban"), Some("rural"), None][i as usize % 3],
                            [Some("mobile"), Some("desktop")][i as usize % 2],
                        ],
                    )
                })
                .collect(),
        }
    }

    fn matches(src: &str) -> Vec<usize> {
        let p = pop();
        let r = compile(src, &p).unwrap_or_else(|e| panic!("{}", e.render(src)));
        (0..p.rows.len()).filter(|&i| r.eval(&p.rows[i].0, &p.rows[i].1)).collect()
    }

    #[test]
    fn evaluates_the_issue_example() {
        let src =
            "monetary >= p80(monetary) and recency_days <= 30 and urbanicity == 'urban' and main_device == 'mobile'";
        // monetary >= 72 → rows 8, 9; recency ≤ 30 → ≥ 7; urban → i % 3 == 0 → 9; mobile → even → none.
        assert_eq!(matches(src), Vec::<usize>::new());
        assert_eq!(matches("monetary >= p80(monetary) and urbanicity == 'urban'"), vec![9]);
        assert_eq!(matches("not (frequency in [0, 1]) or urbanicity not in ['urban', 'rural']"), vec![2, 5, 8]);
        assert_eq!(matches("urbanicity != 'urban' and frequency == 1 OR monetary < 5"), vec![0, 1, 4, 7]);
        assert_eq!(matches("monetary > mean(monetary) and monetary < median(monetary)"), Vec::<usize>::new());
        assert_eq!(matches("true"), (0..10).collect::<Vec<_>>());
    }

    fn err(src: &str) -> String {
        match compile(src, &pop()) {
            Ok(_) => panic!("{src:?} compiled"),
            Err(e) => e.render(src),
        }
    }

    #[test]
    fn errors_point_at_the_text() {
        assert_eq!(
            err("monetary >= p80(monetry)"),
            "monetary >= p80(monetry)\n            ^^^^^^^^^^^^ unknown feature \"monetry\" (did you mean \"monetary\"?)"
        );
        assert_eq!(err("monetary >= 'x'"), "monetary >= 'x'\n^^^^^^^^^^^^^^^ cannot compare a number with a category");
        assert_eq!(
            err("urbanicity < 'x'"),
            "urbanicity < 'x'\n^^^^^^^^^^^^^^^^ categories can only be compared with == or != (not <)"
        );
        assert_eq!(err("monetary >= 1 and"), "monetary >= 1 and\n                 ^ expected a value, found the end");
        assert_eq!(err("monetary = 1"), "monetary = 1\n         ^ use == to compare");
        assert_eq!(err("monetary > 1 && x"), "monetary > 1 && x\n             ^ write `and` instead of '&'");
        assert_eq!(err("(monetary > 1"), "(monetary > 1\n             ^ expected ), found the end");
        assert_eq!(
            err("urbanicity == 'urban"),
            "urbanicity == 'urban\n              ^^^^^^ this string is never closed"
        );
        assert_eq!(err("monetary"), "monetary\n^^^^^^^^ expected a condition (like x > 1), found a number");
        assert_eq!(
            err("p101(monetary) > 1"),
            "p101(monetary) > 1\n^^^^ unknown function \"p101\" (use p0 to p100, mean or median)"
        );
        assert_eq!(
            err("1 < monetary < 3"),
            "1 < monetary < 3\n             ^ comparisons cannot be chained; join them with `and`"
        );
        assert_eq!(
            err("main_device in [1]"),
            "main_device in [1]\n^^^^^^^^^^^^^^^^^^ a category is compared with a list that holds non-strings"
        );
        assert!(err(&"(".repeat(100)).contains("nesting deeper than 64"));
        assert_eq!(RuleError::at(4, 5, "x").column("é > 1"), 4, "columns count characters");
    }

    // ---- property test: compiled evaluation == a naive interpreter over the generated tree.

    #[derive(Debug, Clone)]
    enum G {
        NumCmp(CmpOp, GNum, GNum),
        StrCmp(bool, &'static str, &'static str),
        In(&'static str, Vec<&'static str>, bool),
        And(Vec<G>),
        Or(Vec<G>),
        Not(Box<G>),
    }

    #[derive(Debug, Clone)]
    enum GNum {
        Lit(f64),
        Col(&'static str),
        P(u8, &'static str),
    }

    fn gnum() -> impl Strategy<Value = GNum> {
        prop_oneof![
            (-5i32..120).prop_map(|v| GNum::Lit(f64::from(v) / 2.0)),
            prop::sample::select(vec!["monetary", "recency_days", "frequency"]).prop_map(GNum::Col),
            (0u8..=100, prop::sample::select(vec!["monetary", "frequency"])).prop_map(|(q, c)| GNum::P(q, c)),
        ]
    }

    fn rule_gen() -> impl Strategy<Value = G> {
        let op = prop::sample::select(vec![CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge]);
        let vals = prop::sample::select(vec!["'urban'", "'rural'", "'mobile'", "urbanicity", "main_device"]);
        let leaf = prop_oneof![
            (op, gnum(), gnum()).prop_map(|(o, a, b)| G::NumCmp(o, a, b)),
            (any::<bool>(), vals.clone(), vals).prop_map(|(n, a, b)| G::StrCmp(n, a, b)),
            (
                prop::sample::select(vec!["urbanicity", "main_device"]),
                prop::collection::vec(prop::sample::select(vec!["urban", "rural", "mobile", "desktop"]), 1..3),
                any::<bool>()
            )
                .prop_map(|(c, l, n)| G::In(c, l, n)),
        ];
        leaf.prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 2..4).prop_map(G::And),
                prop::collection::vec(inner.clone(), 2..4).prop_map(G::Or),
                inner.prop_map(|g| G::Not(Box::new(g))),
            ]
        })
    }

    fn show_num(n: &GNum) -> String {
        match n {
            GNum::Lit(v) => format!("{v}"),
            GNum::Col(c) => (*c).to_owned(),
            GNum::P(q, c) => format!("p{q}({c})"),
        }
    }

    /// Prints with full parentheses around compound parts, keywords in random-looking case.
    fn show(g: &G) -> String {
        match g {
            G::NumCmp(o, a, b) => format!("{} {} {}", show_num(a), o.as_str(), show_num(b)),
            G::StrCmp(ne, a, b) => format!("{a} {} {b}", if *ne { "!=" } else { "==" }),
            G::In(c, l, n) => {
                let items: Vec<String> = l.iter().map(|x| format!("'{x}'")).collect();
                format!("{c} {}in [{}]", if *n { "NOT " } else { "" }, items.join(","))
            }
            G::And(v) => v.iter().map(|x| format!("({})", show(x))).collect::<Vec<_>>().join(" and "),
            G::Or(v) => v.iter().map(|x| format!("({})", show(x))).collect::<Vec<_>>().join(" Or "),
            G::Not(x) => format!("not ({})", show(x)),
        }
    }

    fn naive(g: &G, p: &Pop, row: usize) -> bool {
        let get = |name: &str| -> HashMap<&str, Option<String>> {
            let mut m = HashMap::new();
            for (k, n) in p.cat.iter().enumerate() {
                m.insert(*n, p.rows[row].1[k].map(str::to_owned));
            }
            let _ = name;
            m
        };
        let num = |n: &GNum| -> f64 {
            match n {
                GNum::Lit(v) => *v,
                GNum::Col(c) => p.rows[row].0[p.num.iter().position(|x| x == c).expect("col")],
                GNum::P(q, c) => {
                    let k = p.num.iter().position(|x| x == c).expect("col");
                    let mut v: Vec<f64> = p.rows.iter().map(|r| r.0[k]).collect();
                    v.sort_by(f64::total_cmp);
                    let pos = f64::from(*q) / 100.0 * (v.len() - 1) as f64;
                    let lo = pos.floor() as usize;
                    let hi = pos.ceil() as usize;
                    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
                }
            }
        };
        let text = |t: &str| -> Option<String> {
            if let Some(s) = t.strip_prefix('\'') {
                Some(s.trim_end_matches('\'').to_owned())
            } else {
                get(t).get(t).cloned().flatten()
            }
        };
        match g {
            G::NumCmp(o, a, b) => o.num(num(a), num(b)),
            G::StrCmp(ne, a, b) => {
                let eq = match (text(a), text(b)) {
                    (Some(x), Some(y)) => x.to_lowercase() == y.to_lowercase(),
                    _ => false,
                };
                if *ne { !eq } else { eq }
            }
            G::In(c, l, n) => {
                let hit = text(c).is_some_and(|v| l.iter().any(|x| x.to_lowercase() == v.to_lowercase()));
                if *n { !hit } else { hit }
            }
            G::And(v) => v.iter().all(|x| naive(x, p, row)),
            G::Or(v) => v.iter().any(|x| naive(x, p, row)),
            G::Not(x) => !naive(x, p, row),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn evaluation_equals_a_naive_interpreter(g in rule_gen()) {
            let p = pop();
            let src = show(&g);
            let rule = compile(&src, &p).map_err(|e| TestCaseError::fail(e.render(&src)))?;
            for row in 0..p.rows.len() {
                prop_assert_eq!(rule.eval(&p.rows[row].0, &p.rows[row].1), naive(&g, &p, row), "{} on row {}", src, row);
            }
        }

        /// `and` binds tighter than `or`: the unparenthesised form means the same as the
        /// form with explicit groups.
        #[test]
        fn precedence(a in rule_gen(), b in rule_gen(), c in rule_gen()) {
            let p = pop();
            let flat = format!("({}) or ({}) and ({})", show(&a), show(&b), show(&c));
            let grouped = format!("({}) or (({}) and ({}))", show(&a), show(&b), show(&c));
            let (x, y) = (compile(&flat, &p), compile(&grouped, &p));
            let (x, y) = (x.map_err(|e| TestCaseError::fail(e.render(&flat)))?, y.map_err(|e| TestCaseError::fail(e.render(&grouped)))?);
            for r in &p.rows {
                prop_assert_eq!(x.eval(&r.0, &r.1), y.eval(&r.0, &r.1));
            }
        }

        /// Any input at all: an error or a rule, never a panic; errors lie within the input.
        #[test]
        fn never_panics(src in "\\PC{0,80}") {
            if let Err(e) = compile(&src, &pop()) {
                prop_assert!(e.start <= src.len() && e.end <= src.len().max(e.start));
                let _ = e.render(&src);
            }
        }

        #[test]
        fn never_panics_on_near_miss_tokens(parts in prop::collection::vec(prop::sample::select(vec![
            "monetary", "p80(", ")", "(", "and", "or", "not", "in", "[", "]", ",", "'x'", "\"", "==", "<", "1e", "-", "1.5", "urbanicity", "é",
        ]), 0..20)) {
            let src = parts.join(" ");
            if let Err(e) = compile(&src, &pop()) {
                let _ = e.render(&src);
            }
        }
    }
}
