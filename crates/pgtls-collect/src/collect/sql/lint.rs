//! A check that a statement resolves no name through `search_path`: every function, aggregate, relation and type is
//! schema-qualified, every operator written as `OPERATOR(pg_catalog.op)`, and no construct that the grammar turns
//! into an unqualified operator (`LIKE`, `BETWEEN`, `IN (...)`, `IS DISTINCT FROM`, a simple `CASE x WHEN`) is used.
//!
//! pgtls runs as a superuser or a pg_monitor role, often on databases whose users may create objects; a name that
//! resolves through the search path can pick up a planted look-alike that then runs as the monitor (see
//! [`super::PIN_SEARCH_PATH`] for the other half of the defence). The lint reads SQL as a tokenizer would, so it also
//! reads the Rust `format!` templates statements are built from: a `{placeholder}` counts as a name, and what it is
//! replaced with is checked where that text is written.

/// Keywords the grammar allows before `(` that are not function calls (or whose functions the grammar names with
/// `pg_catalog.` itself, as EXTRACT does).
const PAREN_KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "ON",
    "EXISTS",
    "COALESCE",
    "NULLIF",
    "GREATEST",
    "LEAST",
    "EXTRACT",
    "VALUES",
    "ROW",
    "ARRAY",
    "OVER",
    "FILTER",
    "WITHIN",
    "JOIN",
    "BY",
    "THEN",
    "ELSE",
    "WHEN",
    "UNION",
    "ALL",
    "LATERAL",
    "USING",
    "RETURNING",
    "INTO",
    "EXPLAIN",
    "VARIADIC",
];

/// Type names the grammar maps to pg_catalog's types itself (SystemTypeName), so they need no schema.
const GRAMMAR_TYPES: &[&str] = &[
    "INT",
    "INTEGER",
    "SMALLINT",
    "BIGINT",
    "REAL",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
    "NUMERIC",
    "BOOLEAN",
    "CHAR",
    "CHARACTER",
    "VARCHAR",
    "BIT",
    "TIMESTAMP",
    "TIME",
    "INTERVAL",
];

/// Words after which the next name is a relation (or a function in FROM), looked up through the search path.
const RELATION_KEYWORDS: &[&str] = &["FROM", "JOIN", "INTO", "UPDATE", "TABLE"];

/// Keywords that stand for operators the grammar leaves unqualified.
const OPERATOR_KEYWORDS: &[&str] = &["LIKE", "ILIKE", "SIMILAR", "BETWEEN", "DISTINCT"];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    /// A quoted identifier or a `{placeholder}` of a format template: a name, never a keyword.
    Name,
    Literal,
    Param,
    Cast,
    Punct(char),
    Operator(String),
}

fn tokenize(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '-' if next == Some('-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            '\'' => {
                // A string constant; '' is a quote inside it. (E'' strings are not used by pgtls.)
                i += 1;
                while i < chars.len() {
                    if chars[i] == '\'' {
                        if chars.get(i + 1) == Some(&'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                tokens.push(Token::Literal);
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += 1;
                }
                i += 1;
                tokens.push(Token::Name);
            }
            '{' => {
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                i += 1;
                tokens.push(Token::Name);
            }
            '$' if next.is_some_and(|n| n.is_ascii_digit()) => {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                tokens.push(Token::Param);
            }
            ':' if next == Some(':') => {
                i += 2;
                tokens.push(Token::Cast);
            }
            c if c.is_ascii_digit() => {
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                tokens.push(Token::Literal);
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                    i += 1;
                }
                tokens.push(Token::Word(chars[start..i].iter().collect()));
            }
            '(' | ')' | ',' | ';' | '.' | '[' | ']' | ':' => {
                i += 1;
                tokens.push(Token::Punct(c));
            }
            _ => {
                let start = i;
                while i < chars.len() && "+-*/<>=~!@#%^&|`?".contains(chars[i]) {
                    i += 1;
                }
                if i == start {
                    i += 1;
                }
                tokens.push(Token::Operator(chars[start..i].iter().collect()));
            }
        }
    }
    tokens
}

fn upper(token: Option<&Token>) -> Option<String> {
    match token {
        Some(Token::Word(w)) => Some(w.to_ascii_uppercase()),
        _ => None,
    }
}

/// Everything in `sql` that would be resolved through `search_path`, one line each; empty when the statement is safe.
pub fn unqualified(sql: &str) -> Vec<String> {
    let tokens = tokenize(sql);
    let mut found = Vec::new();
    let at = |i: usize| tokens.get(i);
    let mut i = 0;
    while i < tokens.len() {
        let prev = if i > 0 { at(i - 1) } else { None };
        let after_dot = prev == Some(&Token::Punct('.'));
        match &tokens[i] {
            Token::Word(w) => {
                let kw = w.to_ascii_uppercase();
                let next = at(i + 1);
                if kw == "OPERATOR" && next == Some(&Token::Punct('(')) {
                    // OPERATOR(pg_catalog.op): the schema must be pg_catalog; skip to the closing parenthesis.
                    if at(i + 2) != Some(&Token::Word("pg_catalog".to_string()))
                        || at(i + 3) != Some(&Token::Punct('.'))
                    {
                        found.push("OPERATOR(...) without pg_catalog".to_string());
                    }
                    while i < tokens.len() && tokens[i] != Token::Punct(')') {
                        i += 1;
                    }
                } else if OPERATOR_KEYWORDS.contains(&kw.as_str())
                    && !(kw == "DISTINCT" && upper(prev).as_deref() != Some("IS"))
                {
                    found.push(format!("{w} (an unqualified operator)"));
                } else if kw == "IN" && next == Some(&Token::Punct('(')) {
                    found.push("IN (...) (an unqualified =)".to_string());
                } else if kw == "CASE" && upper(next).as_deref() != Some("WHEN") {
                    found.push("CASE x WHEN (an unqualified =)".to_string());
                } else if next == Some(&Token::Punct('('))
                    && !after_dot
                    && !PAREN_KEYWORDS.contains(&kw.as_str())
                    && upper(prev).as_deref() != Some("AS")
                {
                    found.push(format!("{w}(...) (an unqualified function)"));
                } else if RELATION_KEYWORDS.contains(&kw.as_str())
                    && let Some(Token::Word(name)) = next
                    && at(i + 2) != Some(&Token::Punct('.'))
                    && at(i + 2) != Some(&Token::Punct('('))
                    && !PAREN_KEYWORDS.contains(&name.to_ascii_uppercase().as_str())
                {
                    found.push(format!("{kw} {name} (an unqualified relation)"));
                }
            }
            Token::Cast => match at(i + 1) {
                Some(Token::Word(ty))
                    if at(i + 2) != Some(&Token::Punct('.'))
                        && !GRAMMAR_TYPES.contains(&ty.to_ascii_uppercase().as_str()) =>
                {
                    found.push(format!("::{ty} (an unqualified type)"));
                }
                Some(Token::Name) if at(i + 2) != Some(&Token::Punct('.')) => {
                    found.push("::\"...\" (an unqualified type)".to_string());
                }
                _ => {}
            },
            Token::Operator(op) => {
                let star_alone = op == "*" && prev == Some(&Token::Punct('(')) && at(i + 1) == Some(&Token::Punct(')'));
                // `SET name = value` is grammar, not an operator.
                let set_assignment = op == "="
                    && i >= 2
                    && upper(at(i - 2)).as_deref() == Some("SET")
                    && matches!(prev, Some(Token::Word(_) | Token::Name));
                if !star_alone && !set_assignment {
                    found.push(format!("{op} (an unqualified operator)"));
                }
            }
            Token::Name | Token::Literal | Token::Param | Token::Punct(_) => {}
        }
        i += 1;
    }
    found
}

/// One database call found in a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Its statement is a literal: the SQL text, ready to lint.
    Literal(String),
    /// Its statement is computed: `line N: .method(argument`, for a reader to judge.
    Computed(String),
}

/// The SQL text of every database call in a Rust source file: the first argument of `.query(`, `.query_one(`,
/// `.query_opt(`, `.execute(`, `.batch_execute(`, `.simple_query(` and `.prepare(` when it is a string literal or a
/// `format!` template. Calls whose first argument is anything else are returned as [`Call::Computed`] with the line,
/// unless the argument names a statement of [`super`] (`sql::...`).
pub fn calls_in(source: &str) -> Vec<Call> {
    const METHODS: &[&str] = &[
        ".query(",
        ".query_one(",
        ".query_opt(",
        ".query_raw(",
        ".execute(",
        ".batch_execute(",
        ".simple_query(",
        ".prepare(",
        ".prepare_typed(",
    ];
    let mut out = Vec::new();
    for method in METHODS {
        let mut from = 0;
        while let Some(pos) = source[from..].find(method) {
            let start = from + pos + method.len();
            from = start;
            let rest = source[start..].trim_start();
            let rest = rest.strip_prefix('&').unwrap_or(rest).trim_start();
            let rest = rest.strip_prefix("format!(").map(str::trim_start).unwrap_or(rest);
            let line = source[..start].lines().count();
            match rust_string(rest) {
                Some(text) => out.push(Call::Literal(text)),
                None => {
                    let arg: String = rest.chars().take_while(|c| !matches!(c, ',' | ')' | '\n')).collect();
                    if !arg.contains("sql::") && !arg.trim().is_empty() {
                        out.push(Call::Computed(format!("line {line}: {method}{arg}")));
                    }
                }
            }
        }
    }
    out
}

/// The value of the Rust string literal `text` starts with (plain or raw), with `\` line continuations applied.
fn rust_string(text: &str) -> Option<String> {
    if let Some(raw) = text.strip_prefix('r') {
        let hashes = raw.chars().take_while(|c| *c == '#').count();
        let body = raw[hashes..].strip_prefix('"')?;
        let end = body.find(&format!("\"{}", "#".repeat(hashes)))?;
        return Some(body[..end].to_string());
    }
    let body = text.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                '\n' => {
                    while chars.peek().is_some_and(|c| c.is_whitespace()) {
                        chars.next();
                    }
                }
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_search_path_lookup_is_found() {
        for (sql, what) in [
            ("SELECT now()", "now(...)"),
            ("SELECT array_agg(x) FROM pg_catalog.pg_class", "array_agg(...)"),
            ("SELECT pg_catalog.now() FROM pg_settings", "FROM pg_settings"),
            (
                "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_namespace n ON true",
                "JOIN pg_namespace",
            ),
            ("SELECT x::text", "::text"),
            ("SELECT x::\"text\"", "::\"...\""),
            ("SELECT 1 WHERE a = b", "="),
            ("SELECT 1 WHERE a <> b", "<>"),
            ("SELECT a || b", "||"),
            ("SELECT 1 WHERE a LIKE 'x%'", "LIKE"),
            ("SELECT 1 WHERE a BETWEEN 1 AND 2", "BETWEEN"),
            ("SELECT 1 WHERE a IN (1, 2)", "IN (...)"),
            ("SELECT 1 WHERE a IS DISTINCT FROM b", "DISTINCT"),
            ("SELECT CASE a WHEN 1 THEN 2 END", "CASE x WHEN"),
            (
                "SELECT 1 WHERE a OPERATOR(public.=) b",
                "OPERATOR(...) without pg_catalog",
            ),
            ("SELECT {schema}.f() WHERE a = {b}", "="),
            ("SELECT pg_catalog.format('%I', $1::text)", "::text"),
        ] {
            let found = unqualified(sql);
            assert!(
                found.iter().any(|f| f.starts_with(what)),
                "{sql}: expected {what}, found {found:?}"
            );
        }
    }

    #[test]
    fn qualified_statements_pass() {
        for sql in [
            "SELECT pg_catalog.now(), x::pg_catalog.text, y::pg_catalog.text[], z::integer FROM pg_catalog.pg_class c",
            "SELECT 1 WHERE a OPERATOR(pg_catalog.=) $1 AND b IS NOT NULL",
            "SELECT pg_catalog.count(*), COALESCE(NULLIF(a, b), '{}') FROM (SELECT 1) s",
            "SELECT CASE WHEN a THEN 'x = y' ELSE \"odd=name\" END -- a = b\n",
            "SET statement_timeout = 5000; SET lock_timeout = 2500",
            "SELECT t FROM pg_catalog.pg_read_file($1, $2, $3) AS t(x)",
            "SELECT {schema}.ssl_is_used(), pg_catalog.{}(pid) FROM {relation}.x",
            "SELECT EXTRACT(epoch FROM a.backend_start) FROM pg_catalog.pg_stat_activity a",
            "SELECT 1 ORDER BY 1",
        ] {
            assert_eq!(unqualified(sql), Vec::<String>::new(), "{sql}");
        }
    }

    #[test]
    fn calls_are_read_from_rust_source() {
        let source = r##"
            client.query_one("SELECT now()", &[]).await;
            client.simple_query(&format!("SELECT pg_catalog.{}()", f)).await;
            client.query(&sql::PREFLIGHT, &[]).await;
            client.query_opt(&text, &[]).await;
            client.batch_execute(r#"SELECT "a""#).await;
            client.execute("SELECT 1 \
                            WHERE x", &[]).await;
        "##;
        let calls = calls_in(source);
        assert!(calls.contains(&Call::Literal("SELECT now()".to_string())), "{calls:?}");
        assert!(
            calls.contains(&Call::Literal("SELECT pg_catalog.{}()".to_string())),
            "{calls:?}"
        );
        assert!(calls.contains(&Call::Literal("SELECT \"a\"".to_string())), "{calls:?}");
        assert!(
            calls.contains(&Call::Literal("SELECT 1 WHERE x".to_string())),
            "{calls:?}"
        );
        assert!(
            calls
                .iter()
                .any(|c| matches!(c, Call::Computed(e) if e.contains("query_opt(text"))),
            "{calls:?}"
        );
        assert_eq!(calls.len(), 5, "{calls:?}");
    }
}
