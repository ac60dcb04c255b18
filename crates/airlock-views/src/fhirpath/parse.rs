//! Lexer and precedence-climbing parser: path text to [`Expr`].
//!
//! Functions are resolved here, against a fixed table, so an unsupported function or a wrong
//! number of arguments is a load error, not a surprise on the ten-thousandth resource.
//! `%name` constants are substituted here too: after parsing, a path holds no names to look up.

use super::PathError;

/// A literal value of a path, or of a view constant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Bool(bool),
    Int(i64),
    Dec(f64),
    Str(String),
    /// `@2020-01-02` (the text after `@`).
    Date(String),
    /// `@2020-01-02T10:00:00Z`.
    DateTime(String),
    /// `@T10:00` (the text after `@T`).
    Time(String),
}

/// Variables the runner provides (`%rowIndex`, `%resource`, `%context`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnvVar {
    RowIndex,
    Resource,
    Context,
}

/// A type specifier: `Quantity`, `FHIR.Quantity`, `System.String`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeName {
    pub(crate) namespace: Option<String>,
    pub(crate) name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Mul,
    Div,
    IntDiv,
    Mod,
    Add,
    Sub,
    Concat,
    Union,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    Equiv,
    NotEquiv,
    In,
    Contains,
    And,
    Or,
    Xor,
    Implies,
}

impl BinOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Self::Mul => "*",
            Self::Div => "/",
            Self::IntDiv => "div",
            Self::Mod => "mod",
            Self::Add => "+",
            Self::Sub => "-",
            Self::Concat => "&",
            Self::Union => "|",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Equiv => "~",
            Self::NotEquiv => "!~",
            Self::In => "in",
            Self::Contains => "contains",
            Self::And => "and",
            Self::Or => "or",
            Self::Xor => "xor",
            Self::Implies => "implies",
        }
    }

    /// Binding strength, from the FHIRPath grammar (higher binds tighter).
    fn precedence(self) -> u8 {
        match self {
            Self::Implies => 1,
            Self::Or | Self::Xor => 2,
            Self::And => 3,
            Self::In | Self::Contains => 4,
            Self::Eq | Self::Ne | Self::Equiv | Self::NotEquiv => 5,
            Self::Lt | Self::Le | Self::Gt | Self::Ge => 6,
            Self::Union => 7,
            Self::Add | Self::Sub | Self::Concat => 9,
            Self::Mul | Self::Div | Self::IntDiv | Self::Mod => 10,
        }
    }
}

/// Precedence of `is` and `as` (between `|` and `+`).
const TYPE_OP_PRECEDENCE: u8 = 8;

/// The functions the evaluator knows. The table below gives their names and arities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Empty,
    Exists,
    All,
    AllTrue,
    AnyTrue,
    AllFalse,
    AnyFalse,
    Count,
    Distinct,
    IsDistinct,
    Where,
    Select,
    First,
    Last,
    Tail,
    Skip,
    Take,
    Single,
    OfType,
    Is,
    As,
    Not,
    Iif,
    Union,
    Combine,
    Intersect,
    Exclude,
    Join,
    StartsWith,
    EndsWith,
    Contains,
    Substring,
    Lower,
    Upper,
    Length,
    IndexOf,
    Replace,
    Trim,
    Split,
    ToChars,
    ToString,
    ToInteger,
    ToDecimal,
    ToBoolean,
    ConvertsToString,
    ConvertsToInteger,
    ConvertsToDecimal,
    ConvertsToBoolean,
    Abs,
    Ceiling,
    Floor,
    Round,
    Truncate,
    LowBoundary,
    HighBoundary,
    HasValue,
    Extension,
    GetResourceKey,
    GetReferenceKey,
    Trace,
}

/// How a function's arguments are read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Args {
    /// Ordinary expressions, evaluated once against the caller's focus (or, for the lambda
    /// functions `where`, `select`, `exists`, `all`, once per input item).
    Exprs,
    /// One type specifier (`ofType(Quantity)`).
    Type,
}

/// (name, function, fewest arguments, most arguments, argument kind).
const FUNCTIONS: &[(&str, Func, usize, usize, Args)] = &[
    ("empty", Func::Empty, 0, 0, Args::Exprs),
    ("exists", Func::Exists, 0, 1, Args::Exprs),
    ("all", Func::All, 1, 1, Args::Exprs),
    ("allTrue", Func::AllTrue, 0, 0, Args::Exprs),
    ("anyTrue", Func::AnyTrue, 0, 0, Args::Exprs),
    ("allFalse", Func::AllFalse, 0, 0, Args::Exprs),
    ("anyFalse", Func::AnyFalse, 0, 0, Args::Exprs),
    ("count", Func::Count, 0, 0, Args::Exprs),
    ("distinct", Func::Distinct, 0, 0, Args::Exprs),
    ("isDistinct", Func::IsDistinct, 0, 0, Args::Exprs),
    ("where", Func::Where, 1, 1, Args::Exprs),
    ("select", Func::Select, 1, 1, Args::Exprs),
    ("first", Func::First, 0, 0, Args::Exprs),
    ("last", Func::Last, 0, 0, Args::Exprs),
    ("tail", Func::Tail, 0, 0, Args::Exprs),
    ("skip", Func::Skip, 1, 1, Args::Exprs),
    ("take", Func::Take, 1, 1, Args::Exprs),
    ("single", Func::Single, 0, 0, Args::Exprs),
    ("ofType", Func::OfType, 1, 1, Args::Type),
    ("is", Func::Is, 1, 1, Args::Type),
    ("as", Func::As, 1, 1, Args::Type),
    ("not", Func::Not, 0, 0, Args::Exprs),
    ("iif", Func::Iif, 2, 3, Args::Exprs),
    ("union", Func::Union, 1, 1, Args::Exprs),
    ("combine", Func::Combine, 1, 1, Args::Exprs),
    ("intersect", Func::Intersect, 1, 1, Args::Exprs),
    ("exclude", Func::Exclude, 1, 1, Args::Exprs),
    ("join", Func::Join, 0, 1, Args::Exprs),
    ("startsWith", Func::StartsWith, 1, 1, Args::Exprs),
    ("endsWith", Func::EndsWith, 1, 1, Args::Exprs),
    ("contains", Func::Contains, 1, 1, Args::Exprs),
    ("substring", Func::Substring, 1, 2, Args::Exprs),
    ("lower", Func::Lower, 0, 0, Args::Exprs),
    ("upper", Func::Upper, 0, 0, Args::Exprs),
    ("length", Func::Length, 0, 0, Args::Exprs),
    ("indexOf", Func::IndexOf, 1, 1, Args::Exprs),
    ("replace", Func::Replace, 2, 2, Args::Exprs),
    ("trim", Func::Trim, 0, 0, Args::Exprs),
    ("split", Func::Split, 1, 1, Args::Exprs),
    ("toChars", Func::ToChars, 0, 0, Args::Exprs),
    ("toString", Func::ToString, 0, 0, Args::Exprs),
    ("toInteger", Func::ToInteger, 0, 0, Args::Exprs),
    ("toDecimal", Func::ToDecimal, 0, 0, Args::Exprs),
    ("toBoolean", Func::ToBoolean, 0, 0, Args::Exprs),
    (
        "convertsToString",
        Func::ConvertsToString,
        0,
        0,
        Args::Exprs,
    ),
    (
        "convertsToInteger",
        Func::ConvertsToInteger,
        0,
        0,
        Args::Exprs,
    ),
    (
        "convertsToDecimal",
        Func::ConvertsToDecimal,
        0,
        0,
        Args::Exprs,
    ),
    (
        "convertsToBoolean",
        Func::ConvertsToBoolean,
        0,
        0,
        Args::Exprs,
    ),
    ("abs", Func::Abs, 0, 0, Args::Exprs),
    ("ceiling", Func::Ceiling, 0, 0, Args::Exprs),
    ("floor", Func::Floor, 0, 0, Args::Exprs),
    ("round", Func::Round, 0, 1, Args::Exprs),
    ("truncate", Func::Truncate, 0, 0, Args::Exprs),
    ("lowBoundary", Func::LowBoundary, 0, 1, Args::Exprs),
    ("highBoundary", Func::HighBoundary, 0, 1, Args::Exprs),
    ("hasValue", Func::HasValue, 0, 0, Args::Exprs),
    ("extension", Func::Extension, 1, 1, Args::Exprs),
    ("getResourceKey", Func::GetResourceKey, 0, 0, Args::Exprs),
    ("getReferenceKey", Func::GetReferenceKey, 0, 1, Args::Type),
    ("trace", Func::Trace, 1, 2, Args::Exprs),
];

/// A parsed path.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    /// `{}`
    Empty,
    Lit(Literal),
    /// `$this`
    This,
    /// `$index`
    Index,
    Env(EnvVar),
    /// A child element: `name` on the focus (receiver `None`) or on a receiver.
    Member {
        receiver: Option<Box<Expr>>,
        name: String,
        /// `_name`: where a primitive's id and extensions live (precomputed so that
        /// navigation does not allocate).
        ext_key: String,
    },
    Call {
        receiver: Option<Box<Expr>>,
        func: Func,
        args: Vec<Expr>,
        /// The argument of `ofType`, `is`, `as`, `getReferenceKey`.
        ty: Option<TypeName>,
    },
    Indexer(Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Is(Box<Expr>, TypeName),
    As(Box<Expr>, TypeName),
}

/// Resolves `%name` while parsing.
pub(crate) trait Constants {
    fn lookup(&self, name: &str) -> Option<Literal>;
}

/// Deepest nesting of a path (parentheses, operators, function arguments): a bound so that
/// hostile input cannot overflow the stack of the parser or of the evaluator.
const MAX_DEPTH: usize = 100;

/// Most tokens in a path: bounds the size of the tree (and so the recursion of `Drop`).
const MAX_TOKENS: usize = 4096;

/// Deepest tree a path may parse to: chains (`a.b.c`, `1 + 2 + 3`) are parsed by loops, not
/// recursion, so the tree's depth is checked apart, for the evaluator's recursion.
const MAX_TREE_DEPTH: usize = 128;

pub(crate) fn parse(src: &str, constants: &dyn Constants) -> Result<Expr, PathError> {
    let tokens = lex(src)?;
    if tokens.len() > MAX_TOKENS {
        return Err(PathError::TooDeep);
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        end: src.len(),
        depth: 0,
        constants,
    };
    let e = p.expr(0)?;
    if p.peek().is_some() {
        return Err(p.syntax("an operator or the end of the path"));
    }
    if tree_depth(&e) > MAX_TREE_DEPTH {
        return Err(PathError::TooDeep);
    }
    Ok(e)
}

/// The depth of `e`, found without recursion.
fn tree_depth(e: &Expr) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Expr, usize)> = vec![(e, 1)];
    while let Some((e, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        let mut push = |child| stack.push((child, depth + 1));
        match e {
            Expr::Member {
                receiver: Some(r), ..
            }
            | Expr::Neg(r)
            | Expr::Is(r, _)
            | Expr::As(r, _) => push(r),
            Expr::Call { receiver, args, .. } => {
                if let Some(r) = receiver {
                    push(r);
                }
                args.iter().for_each(push);
            }
            Expr::Indexer(a, b) | Expr::Binary(_, a, b) => {
                push(a);
                push(b);
            }
            Expr::Empty
            | Expr::Lit(_)
            | Expr::This
            | Expr::Index
            | Expr::Env(_)
            | Expr::Member { receiver: None, .. } => {}
        }
    }
    deepest
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// A backtick-delimited identifier: never a keyword.
    Delimited(String),
    Str(String),
    Num(String),
    Date(String),
    DateTime(String),
    Time(String),
    /// `%name`
    Ext(String),
    /// `$this`, `$index`, `$total`
    Special(String),
    Sym(&'static str),
}

const SYMBOLS: &[&str] = &[
    "<=", ">=", "!=", "!~", ".", ",", "(", ")", "[", "]", "{", "}", "+", "-", "*", "/", "&", "|",
    "=", "~", "<", ">",
];

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, PathError> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let offset = |i: usize| chars.get(i).map_or(src.len(), |&(o, _)| o);
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(c) = at(i) {
        let start = offset(i);
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == Some('/') {
            while at(i).is_some_and(|c| c != '\n') {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == Some('*') {
            i += 2;
            loop {
                match at(i) {
                    None => return Err(syntax(start, "the end of a `/* */` comment")),
                    Some('*') if at(i + 1) == Some('/') => {
                        i += 2;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut s = String::new();
            while let Some(c) = at(i).filter(|c| c.is_ascii_alphanumeric() || *c == '_') {
                s.push(c);
                i += 1;
            }
            out.push((Tok::Ident(s), start));
        } else if c == '`' || c == '\'' {
            let (s, next) = quoted(&chars, i, c, start)?;
            i = next;
            out.push((
                if c == '`' {
                    Tok::Delimited(s)
                } else {
                    Tok::Str(s)
                },
                start,
            ));
        } else if c.is_ascii_digit() {
            let mut s = String::new();
            while let Some(c) = at(i).filter(char::is_ascii_digit) {
                s.push(c);
                i += 1;
            }
            // A `.` followed by a digit continues the number; otherwise it is an invocation
            // (`1.toString()`).
            if at(i) == Some('.') && at(i + 1).is_some_and(|c| c.is_ascii_digit()) {
                s.push('.');
                i += 1;
                while let Some(c) = at(i).filter(char::is_ascii_digit) {
                    s.push(c);
                    i += 1;
                }
            }
            out.push((Tok::Num(s), start));
        } else if c == '@' {
            i += 1;
            let mut s = String::new();
            let is_time = at(i) == Some('T');
            if is_time {
                i += 1;
            }
            // Date and time characters (a `.` only before a digit: `@2020-01.toString()`); the
            // shape is checked below.
            while let Some(c) = at(i).filter(|&c| {
                c.is_ascii_digit()
                    || matches!(c, '-' | ':' | 'T' | 'Z' | '+')
                    || (c == '.' && at(i + 1).is_some_and(|d| d.is_ascii_digit()))
            }) {
                s.push(c);
                i += 1;
            }
            let tok = if is_time {
                check_time(&s).then_some(Tok::Time(s))
            } else if s.contains('T') {
                check_datetime(&s).then_some(Tok::DateTime(s))
            } else {
                check_date(&s).then_some(Tok::Date(s))
            };
            out.push((
                tok.ok_or_else(|| syntax(start, "a date or time literal"))?,
                start,
            ));
        } else if c == '%' {
            i += 1;
            let name = match at(i) {
                Some(q @ ('`' | '\'')) => {
                    let (s, next) = quoted(&chars, i, q, offset(i))?;
                    i = next;
                    s
                }
                _ => {
                    let mut s = String::new();
                    while let Some(c) = at(i).filter(|c| c.is_ascii_alphanumeric() || *c == '_') {
                        s.push(c);
                        i += 1;
                    }
                    s
                }
            };
            if name.is_empty() {
                return Err(syntax(start, "a constant name after `%`"));
            }
            out.push((Tok::Ext(name), start));
        } else if c == '$' {
            i += 1;
            let mut s = String::new();
            while let Some(c) = at(i).filter(char::is_ascii_alphabetic) {
                s.push(c);
                i += 1;
            }
            out.push((Tok::Special(s), start));
        } else {
            let rest = src.get(start..).unwrap_or_default();
            let Some(sym) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) else {
                return Err(syntax(start, "a path (unexpected character)"));
            };
            i += sym.len();
            out.push((Tok::Sym(sym), start));
        }
    }
    Ok(out)
}

/// Reads a quoted string or delimited identifier starting at `chars[i]` (the opening quote);
/// returns its unescaped text and the index after the closing quote.
fn quoted(
    chars: &[(usize, char)],
    mut i: usize,
    quote: char,
    start: usize,
) -> Result<(String, usize), PathError> {
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let mut s = String::new();
    i += 1;
    loop {
        match at(i) {
            None => return Err(syntax(start, "a closing quote")),
            Some(c) if c == quote => return Ok((s, i + 1)),
            Some('\\') => {
                let e = at(i + 1).ok_or_else(|| syntax(start, "a closing quote"))?;
                i += 2;
                match e {
                    'n' => s.push('\n'),
                    'r' => s.push('\r'),
                    't' => s.push('\t'),
                    'f' => s.push('\u{c}'),
                    'u' => {
                        let mut code = 0u32;
                        for _ in 0..4 {
                            let d = at(i)
                                .and_then(|c| c.to_digit(16))
                                .ok_or_else(|| syntax(start, "four hex digits after `\\u`"))?;
                            code = code * 16 + d;
                            i += 1;
                        }
                        s.push(
                            char::from_u32(code)
                                .ok_or_else(|| syntax(start, "a valid `\\u` escape"))?,
                        );
                    }
                    '\\' | '/' | '\'' | '"' | '`' => s.push(e),
                    _ => return Err(syntax(start, "a valid escape sequence")),
                }
            }
            Some(c) => {
                s.push(c);
                i += 1;
            }
        }
    }
}

fn syntax(offset: usize, expected: &'static str) -> PathError {
    PathError::Syntax { offset, expected }
}

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
pub(crate) fn check_date(s: &str) -> bool {
    let mut parts = s.split('-');
    let year = parts.next().is_some_and(|p| digits(p, 4));
    let rest: Vec<&str> = parts.collect();
    year && rest.len() <= 2 && rest.iter().all(|p| digits(p, 2))
}

/// `HH`, `HH:MM`, `HH:MM:SS` or `HH:MM:SS.fff`.
pub(crate) fn check_time(s: &str) -> bool {
    let (hms, frac) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    !parts.is_empty()
        && parts.len() <= 3
        && parts.iter().all(|p| digits(p, 2))
        && frac.is_none_or(|f| {
            !f.is_empty() && parts.len() == 3 && f.bytes().all(|b| b.is_ascii_digit())
        })
}

/// A date, `T`, an optional time and an optional zone (`Z`, `+HH:MM`, `-HH:MM`).
pub(crate) fn check_datetime(s: &str) -> bool {
    let Some((date, rest)) = s.split_once('T') else {
        return false;
    };
    if !check_date(date) {
        return false;
    }
    let (time, zone) = split_zone(rest);
    (time.is_empty() || check_time(time)) && zone.is_none_or(check_zone)
}

/// Splits `10:00:00+01:00` into the time and the zone.
pub(crate) fn split_zone(s: &str) -> (&str, Option<&str>) {
    if let Some(t) = s.strip_suffix('Z') {
        return (t, Some("Z"));
    }
    match s.rfind(['+', '-']) {
        Some(i) => (s.get(..i).unwrap_or_default(), s.get(i..)),
        None => (s, None),
    }
}

fn check_zone(z: &str) -> bool {
    z == "Z"
        || z.get(1..).is_some_and(|hm| {
            hm.split_once(':')
                .is_some_and(|(h, m)| digits(h, 2) && digits(m, 2))
        })
}

struct Parser<'c> {
    tokens: Vec<(Tok, usize)>,
    pos: usize,
    end: usize,
    depth: usize,
    constants: &'c dyn Constants,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Tok> {
        self.tokens.get(self.pos + ahead).map(|(t, _)| t)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |&(_, o)| o)
    }

    fn syntax(&self, expected: &'static str) -> PathError {
        syntax(self.offset(), expected)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).map(|(t, _)| t.clone());
        self.pos += 1;
        t
    }

    fn eat(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(s)) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, sym: &str, expected: &'static str) -> Result<(), PathError> {
        if self.eat(sym) {
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }

    fn enter(&mut self) -> Result<(), PathError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(PathError::TooDeep)
        } else {
            Ok(())
        }
    }

    fn binop(&self) -> Option<BinOp> {
        Some(match self.peek()? {
            Tok::Sym(s) => match *s {
                "*" => BinOp::Mul,
                "/" => BinOp::Div,
                "+" => BinOp::Add,
                "-" => BinOp::Sub,
                "&" => BinOp::Concat,
                "|" => BinOp::Union,
                "<" => BinOp::Lt,
                "<=" => BinOp::Le,
                ">" => BinOp::Gt,
                ">=" => BinOp::Ge,
                "=" => BinOp::Eq,
                "!=" => BinOp::Ne,
                "~" => BinOp::Equiv,
                "!~" => BinOp::NotEquiv,
                _ => return None,
            },
            Tok::Ident(s) => match s.as_str() {
                "div" => BinOp::IntDiv,
                "mod" => BinOp::Mod,
                "in" => BinOp::In,
                "contains" => BinOp::Contains,
                "and" => BinOp::And,
                "or" => BinOp::Or,
                "xor" => BinOp::Xor,
                "implies" => BinOp::Implies,
                _ => return None,
            },
            _ => return None,
        })
    }

    fn expr(&mut self, min: u8) -> Result<Expr, PathError> {
        self.enter()?;
        let mut lhs = self.unary()?;
        loop {
            if let Some(Tok::Ident(kw)) = self.peek()
                && (kw == "is" || kw == "as")
                && TYPE_OP_PRECEDENCE >= min
            {
                let is = kw == "is";
                self.pos += 1;
                let ty = self.type_name()?;
                lhs = if is {
                    Expr::Is(Box::new(lhs), ty)
                } else {
                    Expr::As(Box::new(lhs), ty)
                };
                continue;
            }
            let Some(op) = self.binop() else { break };
            let prec = op.precedence();
            if prec < min {
                break;
            }
            self.pos += 1;
            let rhs = self.expr(prec + 1)?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, PathError> {
        if self.eat("-") {
            self.enter()?;
            let e = self.unary()?;
            self.depth -= 1;
            return Ok(match e {
                Expr::Lit(Literal::Int(i)) => Expr::Lit(Literal::Int(-i)),
                Expr::Lit(Literal::Dec(d)) => Expr::Lit(Literal::Dec(-d)),
                e => Expr::Neg(Box::new(e)),
            });
        }
        if self.eat("+") {
            return self.unary();
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, PathError> {
        let mut e = self.term()?;
        loop {
            if self.eat(".") {
                e = self.invocation(Some(e))?;
            } else if self.eat("[") {
                self.enter()?;
                let index = self.expr(0)?;
                self.depth -= 1;
                self.expect("]", "`]`")?;
                e = Expr::Indexer(Box::new(e), Box::new(index));
            } else {
                return Ok(e);
            }
        }
    }

    fn term(&mut self) -> Result<Expr, PathError> {
        let start = self.offset();
        match self.peek().cloned() {
            Some(Tok::Ident(name)) => match name.as_str() {
                "true" | "false" if !self.is_call() => {
                    self.pos += 1;
                    Ok(Expr::Lit(Literal::Bool(name == "true")))
                }
                // Keywords that can never start an expression.
                "and" | "or" | "xor" | "implies" | "div" | "mod" => {
                    Err(self.syntax("an expression"))
                }
                _ => self.invocation(None),
            },
            Some(Tok::Delimited(_) | Tok::Special(_)) => self.invocation(None),
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(Expr::Lit(Literal::Str(s)))
            }
            Some(Tok::Num(n)) => {
                self.pos += 1;
                // `4 'mg'`, `3 days`: quantities need UCUM arithmetic the views never use.
                if matches!(self.peek(), Some(Tok::Str(_)))
                    || matches!(self.peek(), Some(Tok::Ident(u)) if is_calendar_unit(u))
                {
                    return Err(PathError::Unsupported {
                        what: "quantity literals",
                    });
                }
                if n.contains('.') {
                    n.parse::<f64>()
                        .map(|d| Expr::Lit(Literal::Dec(d)))
                        .map_err(|_| syntax(start, "a number"))
                } else {
                    n.parse::<i64>()
                        .map(|i| Expr::Lit(Literal::Int(i)))
                        .map_err(|_| syntax(start, "an integer that fits 64 bits"))
                }
            }
            Some(Tok::Date(s)) => {
                self.pos += 1;
                Ok(Expr::Lit(Literal::Date(s)))
            }
            Some(Tok::DateTime(s)) => {
                self.pos += 1;
                Ok(Expr::Lit(Literal::DateTime(s)))
            }
            Some(Tok::Time(s)) => {
                self.pos += 1;
                Ok(Expr::Lit(Literal::Time(s)))
            }
            Some(Tok::Ext(name)) => {
                self.pos += 1;
                self.constant(&name)
            }
            Some(Tok::Sym("(")) => {
                self.pos += 1;
                self.enter()?;
                let e = self.expr(0)?;
                self.depth -= 1;
                self.expect(")", "`)`")?;
                Ok(e)
            }
            Some(Tok::Sym("{")) => {
                self.pos += 1;
                self.expect("}", "`}` (only the empty collection `{}` is supported)")?;
                Ok(Expr::Empty)
            }
            _ => Err(self.syntax("an expression")),
        }
    }

    fn is_call(&self) -> bool {
        matches!(self.peek_at(1), Some(Tok::Sym("(")))
    }

    fn constant(&self, name: &str) -> Result<Expr, PathError> {
        if let Some(lit) = self.constants.lookup(name) {
            return Ok(Expr::Lit(lit));
        }
        Ok(match name {
            "rowIndex" => Expr::Env(EnvVar::RowIndex),
            "resource" | "rootResource" => Expr::Env(EnvVar::Resource),
            "context" => Expr::Env(EnvVar::Context),
            "ucum" => Expr::Lit(Literal::Str("http://unitsofmeasure.org".into())),
            "sct" => Expr::Lit(Literal::Str("http://snomed.info/sct".into())),
            "loinc" => Expr::Lit(Literal::Str("http://loinc.org".into())),
            _ => {
                return Err(PathError::UndefinedConstant {
                    name: name.to_owned(),
                });
            }
        })
    }

    /// A member, a function call or `$this`/`$index`, on `receiver` (or on the focus).
    fn invocation(&mut self, receiver: Option<Expr>) -> Result<Expr, PathError> {
        let name = match self.next() {
            Some(Tok::Ident(n) | Tok::Delimited(n)) => n,
            Some(Tok::Special(s)) if receiver.is_none() => {
                return match s.as_str() {
                    "this" => Ok(Expr::This),
                    "index" => Ok(Expr::Index),
                    "total" => Err(PathError::Unsupported {
                        what: "`$total` (aggregate)",
                    }),
                    _ => Err(syntax(self.offset(), "`$this` or `$index`")),
                };
            }
            _ => {
                self.pos -= 1;
                return Err(self.syntax("a name after `.`"));
            }
        };
        let receiver = receiver.map(Box::new);
        if !self.eat("(") {
            let ext_key = format!("_{name}");
            return Ok(Expr::Member {
                receiver,
                name,
                ext_key,
            });
        }
        self.enter()?;
        let mut args = Vec::new();
        if !self.eat(")") {
            loop {
                args.push(self.expr(0)?);
                if self.eat(")") {
                    break;
                }
                self.expect(",", "`,` or `)`")?;
            }
        }
        self.depth -= 1;
        let Some(&(_, func, min, max, kind)) = FUNCTIONS.iter().find(|f| f.0 == name) else {
            return Err(PathError::UnknownFunction { name });
        };
        if args.len() < min || args.len() > max {
            return Err(PathError::Arity {
                function: name,
                min,
                max,
                found: args.len(),
            });
        }
        let ty = if kind == Args::Type {
            match args.pop() {
                Some(a) => {
                    Some(type_of_expr(&a).ok_or(PathError::TypeExpected { function: name })?)
                }
                None => None,
            }
        } else {
            None
        };
        Ok(Expr::Call {
            receiver,
            func,
            args,
            ty,
        })
    }

    fn type_name(&mut self) -> Result<TypeName, PathError> {
        let mut parts = Vec::new();
        loop {
            match self.next() {
                Some(Tok::Ident(n) | Tok::Delimited(n)) => parts.push(n),
                _ => {
                    self.pos -= 1;
                    return Err(self.syntax("a type name"));
                }
            }
            if !(matches!(self.peek(), Some(Tok::Sym("."))) && parts.len() == 1) {
                break;
            }
            self.pos += 1;
        }
        let name = parts.pop().unwrap_or_default();
        Ok(TypeName {
            namespace: parts.pop(),
            name,
        })
    }
}

/// `Quantity` or `FHIR.Quantity` parsed as a path: the argument of `ofType` and friends.
fn type_of_expr(e: &Expr) -> Option<TypeName> {
    match e {
        Expr::Member {
            receiver: None,
            name,
            ..
        } => Some(TypeName {
            namespace: None,
            name: name.clone(),
        }),
        Expr::Member {
            receiver: Some(r),
            name,
            ..
        } => match r.as_ref() {
            Expr::Member {
                receiver: None,
                name: ns,
                ..
            } => Some(TypeName {
                namespace: Some(ns.clone()),
                name: name.clone(),
            }),
            _ => None,
        },
        _ => None,
    }
}

fn is_calendar_unit(u: &str) -> bool {
    matches!(
        u,
        "year"
            | "years"
            | "month"
            | "months"
            | "week"
            | "weeks"
            | "day"
            | "days"
            | "hour"
            | "hours"
            | "minute"
            | "minutes"
            | "second"
            | "seconds"
            | "millisecond"
            | "milliseconds"
    )
}

/// The name a function is called by, for error messages.
pub(crate) fn function_name(f: Func) -> &'static str {
    FUNCTIONS.iter().find(|e| e.1 == f).map_or("?", |e| e.0)
}
