//! The SQL subset, parsed and checked before any row is read.
//!
//! Accepted: one `SELECT` of aggregates (`COUNT(*)`, `COUNT(col)`, `COUNT(DISTINCT unit)`,
//! `SUM`, `AVG`, `VARIANCE`, `STDDEV`, `MEDIAN`, `QUANTILE(col, p)`) and of the `GROUP BY`
//! columns, from one table or several joined on the privacy unit, with a `WHERE` of
//! comparisons, `IN`, `BETWEEN`, `IS [NOT] NULL`, `AND`, `OR`, `NOT`. Everything else is refused
//! with the reason: the refusals are the part of this module that protects people, since every
//! form accepted here must have a sensitivity the executor can bound.

use std::collections::BTreeMap;

use sqlparser::ast::{
    self, BinaryOperator, DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, GroupByExpr, JoinConstraint, JoinOperator, ObjectName, ObjectNamePart,
    SelectItem, SetExpr, Statement, TableFactor, UnaryOperator,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::DpError;
use crate::metadata::{DpMetadata, PrivacyUnit};

/// The most groups one query may release (the product of the group columns' domains).
pub const MAX_GROUPS: usize = 10_000;

/// The longest SQL accepted.
pub const MAX_SQL_BYTES: usize = 16 * 1024;

/// A column as written: optional table (or alias) and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnName {
    /// The table or alias, if qualified.
    pub table: Option<String>,
    /// The column.
    pub column: String,
}

impl std::fmt::Display for ColumnName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.table {
            Some(t) => write!(f, "{t}.{}", self.column),
            None => write!(f, "{}", self.column),
        }
    }
}

/// An aggregate as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    /// `COUNT(*)`.
    CountRows,
    /// `COUNT(col)`: rows where the column is not null.
    Count(ColumnName),
    /// `COUNT(DISTINCT unit)`: people.
    CountUnits(ColumnName),
    /// `SUM(col)`.
    Sum(ColumnName),
    /// `AVG(col)`.
    Avg(ColumnName),
    /// `VARIANCE(col)` (population variance).
    Variance(ColumnName),
    /// `STDDEV(col)`.
    Stddev(ColumnName),
    /// `MEDIAN(col)` is `QUANTILE(col, 0.5)`.
    Quantile(ColumnName, f64),
}

impl Aggregate {
    /// Its name in reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Aggregate::CountRows | Aggregate::Count(_) => "count",
            Aggregate::CountUnits(_) => "count-distinct-unit",
            Aggregate::Sum(_) => "sum",
            Aggregate::Avg(_) => "avg",
            Aggregate::Variance(_) => "variance",
            Aggregate::Stddev(_) => "stddev",
            Aggregate::Quantile(..) => "quantile",
        }
    }
}

/// One output column.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A `GROUP BY` column, echoed.
    Group {
        /// Output name.
        name: String,
        /// The column.
        column: ColumnName,
    },
    /// An aggregate.
    Aggregate {
        /// Output name (the alias, else the SQL text).
        name: String,
        /// What it computes.
        aggregate: Aggregate,
    },
}

impl Output {
    /// The output column's name.
    pub fn name(&self) -> &str {
        match self {
            Output::Group { name, .. } | Output::Aggregate { name, .. } => name,
        }
    }
}

/// A literal in a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A number: compared numerically.
    Number(f64),
    /// A string: compared as text.
    Text(String),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `=`
    Eq,
    /// `<>`
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

/// A filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate<C> {
    /// Both.
    And(Box<Predicate<C>>, Box<Predicate<C>>),
    /// Either.
    Or(Box<Predicate<C>>, Box<Predicate<C>>),
    /// Not.
    Not(Box<Predicate<C>>),
    /// `col op literal`.
    Compare(C, Cmp, Literal),
    /// `col IS [NOT] NULL` (an empty CSV field is null).
    IsNull(C, bool),
    /// `col [NOT] IN (...)`.
    In(C, Vec<Literal>, bool),
}

/// A parsed query, not yet checked against the tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Tables as `(name, alias)`, the first joined with each later one on the unit.
    pub tables: Vec<(String, Option<String>)>,
    /// The join columns as written, one per join (checked to be the unit later).
    pub join_on: Vec<(ColumnName, ColumnName)>,
    /// The filter.
    pub filter: Option<Predicate<ColumnName>>,
    /// Group columns.
    pub group_by: Vec<ColumnName>,
    /// Outputs in order.
    pub outputs: Vec<Output>,
}

fn refused(why: impl Into<String>) -> DpError {
    DpError::Refused(why.into())
}

/// Parses one query and refuses every form outside the subset.
pub fn parse(sql: &str) -> Result<Query, DpError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(refused(format!(
            "the query is longer than {MAX_SQL_BYTES} bytes"
        )));
    }
    let statements =
        Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| DpError::Syntax(e.to_string()))?;
    let [statement] = statements.as_slice() else {
        return Err(refused("send exactly one SELECT statement"));
    };
    let Statement::Query(query) = statement else {
        return Err(refused("only SELECT is answered"));
    };
    if query.with.is_some() {
        return Err(refused(
            "WITH (common table expressions) is not supported: a subquery could undo contribution bounding",
        ));
    }
    if query.order_by.is_some() || query.limit_clause.is_some() || query.fetch.is_some() {
        return Err(refused(
            "ORDER BY, LIMIT and FETCH are not supported: sort or cut the noisy answer after it is released",
        ));
    }
    let select = match query.body.as_ref() {
        SetExpr::Select(select) => select,
        SetExpr::SetOperation { .. } => {
            return Err(refused(
                "UNION, INTERSECT and EXCEPT are not supported: ask each part as its own query",
            ));
        }
        _ => return Err(refused("only a plain SELECT is answered")),
    };
    if select.distinct.is_some() {
        return Err(refused(
            "SELECT DISTINCT releases the values themselves; use GROUP BY over a declared domain",
        ));
    }
    if select.having.is_some() {
        return Err(refused(
            "HAVING filters on exact aggregates, which leaks them; filter the noisy answer instead",
        ));
    }
    if select.top.is_some()
        || select.into.is_some()
        || !select.lateral_views.is_empty()
        || select.prewhere.is_some()
        || !select.connect_by.is_empty()
        || !select.cluster_by.is_empty()
        || !select.distribute_by.is_empty()
        || !select.sort_by.is_empty()
        || !select.named_window.is_empty()
        || select.qualify.is_some()
    {
        return Err(refused(
            "only SELECT ... FROM ... [JOIN ... ON unit] [WHERE ...] [GROUP BY ...] is answered",
        ));
    }

    // FROM
    let [from] = select.from.as_slice() else {
        return Err(refused(if select.from.is_empty() {
            "the query must read a table (FROM)"
        } else {
            "list tables with JOIN ... ON the privacy unit, not with commas (a cross join has no bounded sensitivity)"
        }));
    };
    let mut tables = vec![table_factor(&from.relation)?];
    let mut join_on = Vec::new();
    for join in &from.joins {
        let constraint = match &join.join_operator {
            JoinOperator::Join(c) | JoinOperator::Inner(c) => c,
            _ => {
                return Err(refused(
                    "only inner joins on the privacy unit are answered (outer, cross and semi joins are not)",
                ));
            }
        };
        let right = table_factor(&join.relation)?;
        match constraint {
            JoinConstraint::On(Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right: r,
            }) => join_on.push((column(left)?, column(r)?)),
            JoinConstraint::Using(columns) if columns.len() == 1 => {
                let name = columns
                    .first()
                    .map(object_name)
                    .transpose()?
                    .unwrap_or_default();
                join_on.push((
                    ColumnName {
                        table: Some(tables.first().map(alias_of).unwrap_or_default()),
                        column: name.clone(),
                    },
                    ColumnName {
                        table: Some(alias_of(&right)),
                        column: name,
                    },
                ));
            }
            _ => {
                return Err(refused(
                    "a join must be ON a.unit = b.unit (or USING (unit)) on the privacy unit",
                ));
            }
        }
        tables.push(right);
    }

    // GROUP BY
    let group_by = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                return Err(refused(
                    "GROUP BY modifiers (ROLLUP, CUBE) are not supported",
                ));
            }
            exprs
                .iter()
                .map(|e| {
                    column(e).map_err(|_| refused("GROUP BY takes column names, not expressions"))
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        GroupByExpr::All(_) => return Err(refused("GROUP BY ALL is not supported")),
    };

    // SELECT list
    let mut outputs = Vec::new();
    for item in &select.projection {
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(e) => (e, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.clone())),
            _ => {
                return Err(refused(
                    "SELECT * releases rows; a DP query returns aggregates and GROUP BY columns only",
                ));
            }
        };
        let name = alias.unwrap_or_else(|| expr.to_string());
        if let Ok(c) = column(expr) {
            if !group_by.contains(&c) {
                return Err(refused(format!(
                    "column {c} is neither aggregated nor in GROUP BY: a DP query releases no row values"
                )));
            }
            outputs.push(Output::Group { name, column: c });
        } else {
            outputs.push(Output::Aggregate {
                name,
                aggregate: aggregate(expr)?,
            });
        }
    }
    if !outputs
        .iter()
        .any(|o| matches!(o, Output::Aggregate { .. }))
    {
        return Err(refused("the query must compute at least one aggregate"));
    }
    let mut names = std::collections::BTreeSet::new();
    for o in &outputs {
        if !names.insert(o.name().to_string()) {
            return Err(refused(format!(
                "two output columns are named {:?}; give them distinct aliases",
                o.name()
            )));
        }
    }
    let filter = select.selection.as_ref().map(predicate).transpose()?;
    Ok(Query {
        tables,
        join_on,
        filter,
        group_by,
        outputs,
    })
}

fn alias_of(t: &(String, Option<String>)) -> String {
    t.1.clone().unwrap_or_else(|| t.0.clone())
}

fn object_name(name: &ObjectName) -> Result<String, DpError> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(id)] => Ok(id.value.clone()),
        _ => Err(refused(format!(
            "{name}: name a table or column of the dataset"
        ))),
    }
}

fn table_factor(t: &TableFactor) -> Result<(String, Option<String>), DpError> {
    match t {
        TableFactor::Table {
            name, alias, args, ..
        } => {
            if args.is_some() {
                return Err(refused("table functions are not supported"));
            }
            Ok((
                object_name(name)?,
                alias.as_ref().map(|a| a.name.value.clone()),
            ))
        }
        TableFactor::Derived { .. } => Err(refused(
            "subqueries in FROM are not supported: they could undo contribution bounding",
        )),
        _ => Err(refused("FROM takes tables of the dataset only")),
    }
}

fn column(e: &Expr) -> Result<ColumnName, DpError> {
    match e {
        Expr::Identifier(id) => Ok(ColumnName {
            table: None,
            column: id.value.clone(),
        }),
        Expr::CompoundIdentifier(ids) => match ids.as_slice() {
            [t, c] => Ok(ColumnName {
                table: Some(t.value.clone()),
                column: c.value.clone(),
            }),
            _ => Err(refused(format!("{e}: write table.column"))),
        },
        Expr::Nested(inner) => column(inner),
        _ => Err(refused(format!("{e} is not a column"))),
    }
}

fn literal(e: &Expr) -> Result<Literal, DpError> {
    match e {
        Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .map(Literal::Number)
                .ok_or_else(|| refused(format!("{n} is not a finite number"))),
            ast::Value::SingleQuotedString(s) => Ok(Literal::Text(s.clone())),
            _ => Err(refused(format!(
                "{e}: compare with a number or a 'quoted string'"
            ))),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match literal(expr)? {
            Literal::Number(n) => Ok(Literal::Number(-n)),
            Literal::Text(_) => Err(refused(format!("{e} is not a number"))),
        },
        Expr::Nested(inner) => literal(inner),
        _ => Err(refused(format!(
            "{e}: a filter compares a column with a literal"
        ))),
    }
}

fn predicate(e: &Expr) -> Result<Predicate<ColumnName>, DpError> {
    Ok(match e {
        Expr::Nested(inner) => predicate(inner)?,
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And => {
                Predicate::And(Box::new(predicate(left)?), Box::new(predicate(right)?))
            }
            BinaryOperator::Or => {
                Predicate::Or(Box::new(predicate(left)?), Box::new(predicate(right)?))
            }
            _ => {
                let cmp = match op {
                    BinaryOperator::Eq => Cmp::Eq,
                    BinaryOperator::NotEq => Cmp::Ne,
                    BinaryOperator::Lt => Cmp::Lt,
                    BinaryOperator::LtEq => Cmp::Le,
                    BinaryOperator::Gt => Cmp::Gt,
                    BinaryOperator::GtEq => Cmp::Ge,
                    _ => return Err(refused(format!("operator {op} is not supported in WHERE"))),
                };
                // `col op lit` or `lit op col`
                match (column(left), column(right)) {
                    (Ok(c), Err(_)) => Predicate::Compare(c, cmp, literal(right)?),
                    (Err(_), Ok(c)) => Predicate::Compare(c, flip(cmp), literal(left)?),
                    _ => {
                        return Err(refused(format!(
                            "{e}: a filter compares one column with a literal"
                        )));
                    }
                }
            }
        },
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => Predicate::Not(Box::new(predicate(expr)?)),
        Expr::IsNull(inner) => Predicate::IsNull(column(inner)?, false),
        Expr::IsNotNull(inner) => Predicate::IsNull(column(inner)?, true),
        Expr::In {
            expr,
            target,
            negated,
            ..
        } => match target {
            ast::InTarget::List(list) => Predicate::In(
                column(expr)?,
                list.iter().map(literal).collect::<Result<_, _>>()?,
                *negated,
            ),
            _ => return Err(refused("IN takes a list of literals, not a subquery")),
        },
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let c = column(expr)?;
            let both = Predicate::And(
                Box::new(Predicate::Compare(c.clone(), Cmp::Ge, literal(low)?)),
                Box::new(Predicate::Compare(c, Cmp::Le, literal(high)?)),
            );
            if *negated {
                Predicate::Not(Box::new(both))
            } else {
                both
            }
        }
        _ => {
            return Err(refused(format!(
                "{e} is not supported in WHERE (comparisons, IN, BETWEEN, IS NULL, AND, OR, NOT)"
            )));
        }
    })
}

fn flip(c: Cmp) -> Cmp {
    match c {
        Cmp::Lt => Cmp::Gt,
        Cmp::Le => Cmp::Ge,
        Cmp::Gt => Cmp::Lt,
        Cmp::Ge => Cmp::Le,
        other => other,
    }
}

fn aggregate(e: &Expr) -> Result<Aggregate, DpError> {
    let Expr::Function(f) = e else {
        return Err(refused(format!(
            "{e}: output columns are aggregates (COUNT, SUM, AVG, VARIANCE, STDDEV, MEDIAN, QUANTILE) or GROUP BY columns"
        )));
    };
    if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() {
        return Err(refused(format!(
            "{e}: window functions, FILTER and WITHIN GROUP are not supported"
        )));
    }
    let name = object_name(&f.name)?.to_ascii_uppercase();
    let FunctionArguments::List(list) = &f.args else {
        return Err(refused(format!("{e}: give the aggregate its column")));
    };
    if !list.clauses.is_empty() {
        return Err(refused(format!(
            "{e}: clauses inside an aggregate are not supported"
        )));
    }
    let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
    let args: Vec<&FunctionArgExpr> = list
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(x) => Ok(x),
            _ => Err(refused(format!("{e}: named arguments are not supported"))),
        })
        .collect::<Result<_, _>>()?;
    let col = |i: usize| -> Result<ColumnName, DpError> {
        match args.get(i) {
            Some(FunctionArgExpr::Expr(x)) => column(x).map_err(|_| {
                refused(format!(
                    "{e}: aggregates take a column, not an expression (declare a derived column in the dataset instead)"
                ))
            }),
            _ => Err(refused(format!("{e}: give the aggregate its column"))),
        }
    };
    let one_arg = || -> Result<ColumnName, DpError> {
        if args.len() != 1 {
            return Err(refused(format!("{e} takes one column")));
        }
        col(0)
    };
    if distinct && name != "COUNT" {
        return Err(refused(format!(
            "{e}: DISTINCT is supported only in COUNT(DISTINCT unit)"
        )));
    }
    Ok(match name.as_str() {
        "COUNT" => match args.as_slice() {
            [FunctionArgExpr::Wildcard] if !distinct => Aggregate::CountRows,
            [FunctionArgExpr::Expr(_)] if distinct => Aggregate::CountUnits(col(0)?),
            [FunctionArgExpr::Expr(_)] => Aggregate::Count(col(0)?),
            _ => {
                return Err(refused(format!(
                    "{e}: write COUNT(*), COUNT(col) or COUNT(DISTINCT unit)"
                )));
            }
        },
        "SUM" => Aggregate::Sum(one_arg()?),
        "AVG" | "MEAN" => Aggregate::Avg(one_arg()?),
        "VARIANCE" | "VAR" | "VAR_POP" | "VAR_SAMP" => Aggregate::Variance(one_arg()?),
        "STDDEV" | "STDDEV_POP" | "STDDEV_SAMP" | "STD" => Aggregate::Stddev(one_arg()?),
        "MEDIAN" => Aggregate::Quantile(one_arg()?, 0.5),
        "QUANTILE" | "PERCENTILE" => {
            if args.len() != 2 {
                return Err(refused(format!(
                    "{e}: write QUANTILE(col, p) with 0 < p < 1"
                )));
            }
            let p = match args.get(1) {
                Some(FunctionArgExpr::Expr(x)) => match literal(x)? {
                    Literal::Number(p) if p > 0.0 && p < 1.0 => p,
                    _ => return Err(refused(format!("{e}: p must be a number between 0 and 1"))),
                },
                _ => return Err(refused(format!("{e}: p must be a number between 0 and 1"))),
            };
            Aggregate::Quantile(col(0)?, p)
        }
        "MIN" | "MAX" => {
            return Err(refused(format!(
                "{e}: the minimum and maximum are one person's value; ask for QUANTILE(col, 0.05) or QUANTILE(col, 0.95)"
            )));
        }
        _ => {
            return Err(refused(format!(
                "{e}: {name} is not a supported aggregate (COUNT, SUM, AVG, VARIANCE, STDDEV, MEDIAN, QUANTILE)"
            )));
        }
    })
}

/// The columns of each table, as the dataset holds them (headers only: no row is needed to
/// check a query).
pub type Schema = BTreeMap<String, Vec<String>>;

/// A resolved column: table index in the query and column index in that table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Col {
    /// Which of the query's tables.
    pub table: usize,
    /// Which column of it.
    pub column: usize,
}

/// An aggregate with its columns resolved and its bounds attached.
#[derive(Debug, Clone, PartialEq)]
pub enum Agg {
    /// Rows.
    CountRows,
    /// Non-null values.
    Count(Col),
    /// Distinct units.
    CountUnits,
    /// Sum over `[lo, hi]`.
    Sum(Col, f64, f64),
    /// Mean over `[lo, hi]`.
    Avg(Col, f64, f64),
    /// Variance over `[lo, hi]`.
    Variance(Col, f64, f64),
    /// Standard deviation over `[lo, hi]`.
    Stddev(Col, f64, f64),
    /// Quantile `p` over `[lo, hi]`.
    Quantile(Col, f64, f64, f64),
}

/// A query checked against the schema and the metadata: what the executor runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Table names, in join order.
    pub tables: Vec<String>,
    /// The unit column of each table (`None` when the unit is the row).
    pub unit: Vec<Option<usize>>,
    /// The filter.
    pub filter: Option<Predicate<Col>>,
    /// Group columns and their public domains.
    pub groups: Vec<(Col, Vec<String>)>,
    /// Outputs: name, and either a group index or an aggregate.
    pub outputs: Vec<(String, Result<usize, Agg>)>,
    /// Rows per unit, at most, after the join and the filter.
    pub max_rows_per_unit: u32,
    /// Each table's own bound, applied before a join.
    pub table_rows_per_unit: Vec<u32>,
}

impl Query {
    /// Resolves names against the schema and attaches bounds and domains from the metadata;
    /// refuses what the metadata does not allow. Reads no row.
    pub fn plan(&self, schema: &Schema, meta: &DpMetadata) -> Result<Plan, DpError> {
        meta.check()?;
        let mut tables = Vec::new();
        let mut aliases = Vec::new();
        for (name, alias) in &self.tables {
            if !schema.contains_key(name) {
                let known: Vec<&str> = schema.keys().map(String::as_str).collect();
                return Err(DpError::Unknown(format!(
                    "table {name:?}: the dataset has {}",
                    known.join(", ")
                )));
            }
            tables.push(name.clone());
            aliases.push(alias.clone().unwrap_or_else(|| name.clone()));
        }
        if tables.len() > 1 && meta.unit == PrivacyUnit::Row {
            return Err(refused(
                "tables can be joined only on a privacy unit column; this dataset's unit is the row",
            ));
        }
        let columns_of = |t: usize| -> &[String] {
            tables
                .get(t)
                .and_then(|n| schema.get(n))
                .map(Vec::as_slice)
                .unwrap_or_default()
        };
        let resolve = |c: &ColumnName| -> Result<Col, DpError> {
            let candidates: Vec<usize> = match &c.table {
                Some(t) => {
                    let i = aliases
                        .iter()
                        .position(|a| a == t)
                        .ok_or_else(|| DpError::Unknown(format!("table or alias {t:?} in {c}")))?;
                    vec![i]
                }
                None => (0..tables.len()).collect(),
            };
            let hits: Vec<Col> = candidates
                .into_iter()
                .filter_map(|t| {
                    columns_of(t)
                        .iter()
                        .position(|x| x == &c.column)
                        .map(|column| Col { table: t, column })
                })
                .collect();
            match hits.as_slice() {
                [one] => Ok(*one),
                [] => Err(DpError::Unknown(format!("column {c}"))),
                _ => Err(refused(format!(
                    "column {c} is in several tables; write table.{}",
                    c.column
                ))),
            }
        };
        let unit = match &meta.unit {
            PrivacyUnit::Row => vec![None; tables.len()],
            PrivacyUnit::Column(u) => (0..tables.len())
                .map(|t| {
                    columns_of(t)
                        .iter()
                        .position(|x| x == u)
                        .map(Some)
                        .ok_or_else(|| {
                            DpError::Metadata(format!(
                                "table {:?} has no privacy unit column {u:?}",
                                tables.get(t).map(String::as_str).unwrap_or_default()
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        for (i, (l, r)) in self.join_on.iter().enumerate() {
            let (l, r) = (resolve(l)?, resolve(r)?);
            let joined = i + 1;
            let is_unit = |c: Col| unit.get(c.table).copied().flatten() == Some(c.column);
            let pair = [l.table, r.table];
            if !is_unit(l) || !is_unit(r) || !pair.contains(&joined) || l.table == r.table {
                return Err(refused(
                    "a join must match the privacy unit column of the two tables it joins",
                ));
            }
        }
        let bounds = |c: Col, written: &ColumnName| -> Result<(f64, f64), DpError> {
            let t = tables.get(c.table).map(String::as_str).unwrap_or_default();
            meta.bounds_of(t, &written.column).ok_or_else(|| {
                DpError::Metadata(format!(
                    "column {written} has no declared bounds; the privacy officer declares them (airlock dp metadata set --bounds {}=lo:hi)",
                    written.column
                ))
            })
        };
        let mut groups = Vec::new();
        for g in &self.group_by {
            let c = resolve(g)?;
            if unit.get(c.table).copied().flatten() == Some(c.column) {
                return Err(refused(
                    "grouping by the privacy unit releases each person's figures",
                ));
            }
            let t = tables.get(c.table).map(String::as_str).unwrap_or_default();
            let domain = meta.domain_of(t, &g.column).ok_or_else(|| {
                DpError::Metadata(format!(
                    "GROUP BY column {g} has no declared domain; the privacy officer declares it (airlock dp metadata set --domain '{}=a|b|c')",
                    g.column
                ))
            })?;
            groups.push((c, domain.clone()));
        }
        let n_groups = groups
            .iter()
            .try_fold(1usize, |n, (_, d)| n.checked_mul(d.len()))
            .filter(|n| *n <= MAX_GROUPS)
            .ok_or_else(|| {
                refused(format!(
                    "the GROUP BY domains make more than {MAX_GROUPS} groups"
                ))
            })?;
        let mut outputs = Vec::new();
        for o in &self.outputs {
            let entry = match o {
                Output::Group { name, column } => {
                    let c = resolve(column)?;
                    let g = groups
                        .iter()
                        .position(|(gc, _)| *gc == c)
                        .ok_or_else(|| refused(format!("column {column} is not in GROUP BY")))?;
                    (name.clone(), Ok(g))
                }
                Output::Aggregate { name, aggregate } => {
                    let agg = match aggregate {
                        Aggregate::CountRows => Agg::CountRows,
                        Aggregate::Count(c) => Agg::Count(resolve(c)?),
                        Aggregate::CountUnits(c) => {
                            let rc = resolve(c)?;
                            if unit.get(rc.table).copied().flatten() != Some(rc.column) {
                                return Err(refused(format!(
                                    "COUNT(DISTINCT {c}): distinct counts are answered for the privacy unit only"
                                )));
                            }
                            Agg::CountUnits
                        }
                        Aggregate::Sum(c) => {
                            let rc = resolve(c)?;
                            let (lo, hi) = bounds(rc, c)?;
                            Agg::Sum(rc, lo, hi)
                        }
                        Aggregate::Avg(c) => {
                            let rc = resolve(c)?;
                            let (lo, hi) = bounds(rc, c)?;
                            Agg::Avg(rc, lo, hi)
                        }
                        Aggregate::Variance(c) => {
                            let rc = resolve(c)?;
                            let (lo, hi) = bounds(rc, c)?;
                            Agg::Variance(rc, lo, hi)
                        }
                        Aggregate::Stddev(c) => {
                            let rc = resolve(c)?;
                            let (lo, hi) = bounds(rc, c)?;
                            Agg::Stddev(rc, lo, hi)
                        }
                        Aggregate::Quantile(c, p) => {
                            if n_groups > 1 {
                                return Err(refused(
                                    "quantiles by group are not supported yet; ask one group at a time with WHERE",
                                ));
                            }
                            let rc = resolve(c)?;
                            let (lo, hi) = bounds(rc, c)?;
                            Agg::Quantile(rc, lo, hi, *p)
                        }
                    };
                    (name.clone(), Err(agg))
                }
            };
            outputs.push(entry);
        }
        let filter = self
            .filter
            .as_ref()
            .map(|p| resolve_predicate(p, &resolve))
            .transpose()?;
        let table_bounds: Vec<u32> = tables.iter().map(|t| meta.rows_per_unit_of(t)).collect();
        // One table: its own bound. A join: the product of the tables' bounds, at most the
        // dataset's.
        let max_rows_per_unit = if tables.len() == 1 {
            table_bounds
                .first()
                .copied()
                .unwrap_or(meta.max_rows_per_unit)
        } else {
            table_bounds
                .iter()
                .try_fold(1u32, |p, k| p.checked_mul(*k))
                .unwrap_or(u32::MAX)
                .min(meta.max_rows_per_unit)
        };
        Ok(Plan {
            tables,
            unit,
            filter,
            groups,
            outputs,
            max_rows_per_unit,
            table_rows_per_unit: table_bounds,
        })
    }
}

fn resolve_predicate(
    p: &Predicate<ColumnName>,
    resolve: &dyn Fn(&ColumnName) -> Result<Col, DpError>,
) -> Result<Predicate<Col>, DpError> {
    Ok(match p {
        Predicate::And(a, b) => Predicate::And(
            Box::new(resolve_predicate(a, resolve)?),
            Box::new(resolve_predicate(b, resolve)?),
        ),
        Predicate::Or(a, b) => Predicate::Or(
            Box::new(resolve_predicate(a, resolve)?),
            Box::new(resolve_predicate(b, resolve)?),
        ),
        Predicate::Not(a) => Predicate::Not(Box::new(resolve_predicate(a, resolve)?)),
        Predicate::Compare(c, op, l) => Predicate::Compare(resolve(c)?, *op, l.clone()),
        Predicate::IsNull(c, n) => Predicate::IsNull(resolve(c)?, *n),
        Predicate::In(c, l, n) => Predicate::In(resolve(c)?, l.clone(), *n),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(sql: &str) -> String {
        match parse(sql) {
            Err(DpError::Refused(why)) => why,
            other => format!("NOT REFUSED: {other:?}"),
        }
    }

    #[test]
    fn every_form_outside_the_subset_is_refused_with_its_reason() {
        let cases = [
            ("SELECT * FROM data", "SELECT *"),
            ("SELECT age FROM data", "neither aggregated"),
            ("SELECT DISTINCT sex FROM data", "SELECT DISTINCT"),
            (
                "SELECT COUNT(*) FROM data GROUP BY sex HAVING COUNT(*) > 5",
                "HAVING",
            ),
            ("SELECT COUNT(*) FROM data ORDER BY 1", "ORDER BY"),
            ("SELECT COUNT(*) FROM data LIMIT 5", "LIMIT"),
            (
                "WITH t AS (SELECT * FROM data) SELECT COUNT(*) FROM t",
                "WITH",
            ),
            (
                "SELECT COUNT(*) FROM (SELECT * FROM data) t",
                "subqueries in FROM",
            ),
            (
                "SELECT COUNT(*) FROM data UNION SELECT COUNT(*) FROM data",
                "UNION",
            ),
            ("SELECT COUNT(*) FROM a, b", "commas"),
            (
                "SELECT COUNT(*) FROM a LEFT JOIN b ON a.p = b.p",
                "inner joins",
            ),
            ("SELECT COUNT(*) FROM a CROSS JOIN b", "inner joins"),
            (
                "SELECT COUNT(*) FROM a JOIN b ON a.p < b.p",
                "ON a.unit = b.unit",
            ),
            ("SELECT MAX(age) FROM data", "minimum and maximum"),
            ("SELECT MIN(age) FROM data", "minimum and maximum"),
            ("SELECT SUM(age * 2) FROM data", "not an expression"),
            (
                "SELECT SUM(DISTINCT age) FROM data",
                "DISTINCT is supported only",
            ),
            ("SELECT COUNT(*) OVER () FROM data", "window functions"),
            (
                "SELECT STRING_AGG(name, ',') FROM data",
                "not a supported aggregate",
            ),
            (
                "SELECT COUNT(*) FROM data WHERE age IN (SELECT age FROM data)",
                "subquery",
            ),
            (
                "SELECT COUNT(*) FROM data WHERE age = other",
                "one column with a literal",
            ),
            (
                "SELECT COUNT(*) FROM data WHERE LOWER(name) = 'x'",
                "literal",
            ),
            (
                "SELECT COUNT(*) FROM data WHERE name LIKE 'A%'",
                "not supported in WHERE",
            ),
            ("SELECT COUNT(*) FROM data GROUP BY age + 1", "column names"),
            ("SELECT QUANTILE(age, 1.5) FROM data", "between 0 and 1"),
            ("SELECT 1", "read a table"),
            (
                "SELECT sex FROM data GROUP BY sex",
                "at least one aggregate",
            ),
            (
                "SELECT COUNT(*) AS n, SUM(x) AS n FROM data",
                "distinct aliases",
            ),
            ("DELETE FROM data", "only SELECT"),
            (
                "SELECT COUNT(*) FROM data; SELECT COUNT(*) FROM data",
                "exactly one",
            ),
        ];
        for (sql, why) in cases {
            let got = refusal(sql);
            assert!(!got.starts_with("NOT REFUSED"), "{sql}: {got}");
            assert!(got.contains(why), "{sql}: {got:?} lacks {why:?}");
        }
        assert!(matches!(
            parse("SELEC COUNT(*) FROM"),
            Err(DpError::Syntax(_))
        ));
    }

    fn meta() -> DpMetadata {
        DpMetadata {
            bins: Default::default(),
            unit: PrivacyUnit::Column("patient".into()),
            max_rows_per_unit: 3,
            table_rows_per_unit: BTreeMap::from([("dx".into(), 2)]),
            bounds: BTreeMap::from([("age".into(), (0.0, 100.0))]),
            domains: BTreeMap::from([("sex".into(), vec!["F".into(), "M".into()])]),
        }
    }

    fn schema() -> Schema {
        BTreeMap::from([
            (
                "enc".into(),
                vec!["patient".into(), "age".into(), "sex".into(), "los".into()],
            ),
            ("dx".into(), vec!["patient".into(), "code".into()]),
        ])
    }

    #[test]
    fn plans_check_names_bounds_and_domains_before_reading() -> Result<(), DpError> {
        let ok = parse(
            "SELECT sex, COUNT(*) AS n, AVG(e.age) AS mean_age FROM enc e JOIN dx d ON e.patient = d.patient WHERE code = 'I10' GROUP BY sex",
        )?
        .plan(&schema(), &meta())?;
        assert_eq!(ok.groups.len(), 1);
        assert_eq!(ok.outputs.len(), 3);
        // A join's bound is the product of its tables' (3 × 2), at most the dataset's (3);
        // one table's is its own.
        assert_eq!(
            (ok.max_rows_per_unit, ok.table_rows_per_unit.clone()),
            (3, vec![3, 2])
        );
        let dx = parse("SELECT COUNT(*) FROM dx")?.plan(&schema(), &meta())?;
        assert_eq!(dx.max_rows_per_unit, 2);
        let err = |sql: &str| match parse(sql).and_then(|q| q.plan(&schema(), &meta())) {
            Err(e) => e.to_string(),
            Ok(_) => "PLANNED".into(),
        };
        assert!(err("SELECT SUM(los) FROM enc").contains("no declared bounds"));
        assert!(err("SELECT COUNT(*) FROM enc GROUP BY los").contains("no declared domain"));
        assert!(err("SELECT COUNT(*) FROM nope").contains("unknown table"));
        assert!(err("SELECT SUM(nope) FROM enc").contains("unknown column nope"));
        assert!(
            err("SELECT COUNT(*) FROM enc JOIN dx ON enc.age = dx.patient")
                .contains("privacy unit column")
        );
        assert!(err("SELECT COUNT(DISTINCT code) FROM dx").contains("privacy unit only"));
        assert!(
            err("SELECT COUNT(*) FROM enc JOIN dx ON enc.patient = dx.patient GROUP BY patient")
                .contains("several tables")
        );
        assert!(
            err("SELECT COUNT(*) FROM enc GROUP BY enc.patient").contains("privacy unit releases")
        );
        assert!(
            err("SELECT sex, MEDIAN(age) FROM enc GROUP BY sex").contains("quantiles by group")
        );
        Ok(())
    }
}
