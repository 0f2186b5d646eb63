//! When an answer's rows are the reference's: result-set accuracy as text-to-SQL benchmarks
//! measure it. Column names do not matter and the answer may carry more columns than the
//! reference (a list that shows severity beside the id is still the list), but every reference
//! column must be one of the answer's, and the rows must be equal on those columns: in order when
//! the reference orders, as multisets otherwise. Numbers are equal to six significant digits.

use serde_json::Value;

use super::Table;

/// `Ok` when `answer` holds `reference`'s rows; otherwise what differs.
pub fn same(reference: &Table, answer: &Table, ordered: bool) -> Result<(), String> {
    if reference.rows.len() != answer.rows.len() {
        return Err(format!("{} rows, expected {}", answer.rows.len(), reference.rows.len()));
    }
    let wanted: Vec<Vec<String>> = (0..reference.columns.len()).map(|j| column(reference, j)).collect();
    let found: Vec<Vec<String>> = (0..answer.columns.len()).map(|j| column(answer, j)).collect();
    // The answer columns each reference column could be: the same values, in any order.
    let candidates: Vec<Vec<usize>> = wanted
        .iter()
        .map(|values| (0..found.len()).filter(|&m| sorted(&found[m]) == sorted(values)).collect())
        .collect();
    if let Some(j) = candidates.iter().position(Vec::is_empty) {
        return Err(format!("no column holds the values of `{}`", reference.columns[j]));
    }
    let expected = rows(&wanted, &(0..wanted.len()).collect::<Vec<_>>(), ordered);
    let mut choice = Vec::with_capacity(wanted.len());
    if assign(&candidates, &found, &expected, ordered, &mut choice) {
        Ok(())
    } else {
        Err("the columns hold the right values, but not in the same rows".into())
    }
}

/// Tries the candidate columns of each reference column in turn until the rows agree.
fn assign(
    candidates: &[Vec<usize>],
    found: &[Vec<String>],
    expected: &[Vec<String>],
    ordered: bool,
    choice: &mut Vec<usize>,
) -> bool {
    let Some(options) = candidates.get(choice.len()) else {
        return rows(found, choice, ordered) == expected;
    };
    for &m in options {
        choice.push(m);
        if assign(candidates, found, expected, ordered, choice) {
            return true;
        }
        choice.pop();
    }
    false
}

/// The rows made of `columns` (indexes into `table`'s columns), sorted unless `ordered`.
fn rows(table: &[Vec<String>], columns: &[usize], ordered: bool) -> Vec<Vec<String>> {
    let count = table.first().map_or(0, Vec::len);
    let mut rows: Vec<Vec<String>> =
        (0..count).map(|r| columns.iter().map(|&c| table[c][r].clone()).collect()).collect();
    if !ordered {
        rows.sort();
    }
    rows
}

fn column(table: &Table, j: usize) -> Vec<String> {
    table.rows.iter().map(|row| canonical(row.get(j).unwrap_or(&Value::Null))).collect()
}

fn sorted(values: &[String]) -> Vec<String> {
    let mut values = values.to_vec();
    values.sort();
    values
}

/// One spelling per value: numbers (and booleans, and numbers ClickHouse quoted) to six
/// significant digits, so that `0.5`, `"0.5"` and `0.50000001` agree.
fn canonical(value: &Value) -> String {
    let number = match value {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::String(s) => s.parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    };
    match (number, value) {
        (Some(0.0), _) => "0".into(),
        (Some(f), _) => format!("{f:.5e}"),
        (None, Value::Null) => "NULL".into(),
        (None, Value::String(s)) => s.clone(),
        (None, other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn table(columns: &[&str], rows: Value) -> Table {
        let rows = rows.as_array().unwrap().iter().map(|r| r.as_array().unwrap().clone()).collect();
        Table { columns: columns.iter().map(|c| c.to_string()).collect(), rows }
    }

    #[test]
    fn extra_columns_and_names_do_not_matter_but_values_and_rows_do() {
        let reference = table(&["service", "n"], json!([["kafka", 3], ["postgres", 5]]));
        let answer =
            table(&["incidents", "svc", "team"], json!([["5", "postgres", "data"], [3.0000001, "kafka", "platform"]]));
        assert_eq!(same(&reference, &answer, false), Ok(()));
        // The same values, paired differently.
        let crossed = table(&["svc", "n"], json!([["kafka", 5], ["postgres", 3]]));
        assert!(same(&reference, &crossed, false).is_err());
        let missing = table(&["svc"], json!([["kafka"], ["postgres"]]));
        assert_eq!(same(&reference, &missing, false), Err("no column holds the values of `n`".into()));
        let short = table(&["service", "n"], json!([["kafka", 3]]));
        assert_eq!(same(&reference, &short, false), Err("1 rows, expected 2".into()));
    }

    #[test]
    fn order_counts_only_when_the_reference_orders() {
        let reference = table(&["service"], json!([["postgres"], ["kafka"]]));
        let answer = table(&["service"], json!([["kafka"], ["postgres"]]));
        assert_eq!(same(&reference, &answer, false), Ok(()));
        assert!(same(&reference, &answer, true).is_err());
    }

    #[test]
    fn two_columns_with_the_same_values_are_told_apart_by_their_rows() {
        let reference = table(&["a", "b"], json!([[1, 2], [2, 1]]));
        let answer = table(&["x", "y"], json!([[2, 1], [1, 2]]));
        assert_eq!(same(&reference, &answer, true), Ok(()), "b is x, a is y");
        let nulls = table(&["mtta"], json!([[null]]));
        assert!(same(&nulls, &table(&["mtta"], json!([[0]])), false).is_err());
    }
}
