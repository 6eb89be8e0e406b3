//! The job conditions of a `criteria: dependency_query:` (LAVA's query conditions: `,`
//! between conditions, each `field__value`, `field__operator__value` or
//! `testjob__field__operator__value`), matched against jobs as LAVA's query matches them:
//! choice fields (`state`, `health`) by their display names, `health_check` as `False` or
//! anything else, the submitter and device by name.

use crate::store::display_name as display;
use crate::store::Job;

/// One condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    field: Field,
    operator: Operator,
    value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Id,
    Description,
    Submitter,
    State,
    Health,
    ActualDevice,
    DeviceType,
    Priority,
    HealthCheck,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Exact,
    IExact,
    NotEqual,
    IContains,
    Greater,
    Less,
}

/// Reads a condition string; an error says which condition and why.
pub fn parse(conditions: &str) -> Result<Vec<Condition>, String> {
    conditions
        .split(',')
        .map(|text| {
            let parts: Vec<&str> = text.split("__").collect();
            let (field, operator, value) = match parts.as_slice() {
                [field, value] => (*field, "exact", *value),
                [field, operator, value] => (*field, *operator, *value),
                ["testjob", field, operator, value] => (*field, *operator, *value),
                [table, _, _, _] => {
                    return Err(format!(
                        "{text:?}: only testjob conditions are supported, not {table}"
                    ))
                }
                _ => return Err(format!("{text:?} is not field__operator__value")),
            };
            let field = match field {
                "id" => Field::Id,
                "description" => Field::Description,
                "submitter" => Field::Submitter,
                "state" => Field::State,
                "health" => Field::Health,
                "actual_device" => Field::ActualDevice,
                "requested_device_type" => Field::DeviceType,
                "priority" => Field::Priority,
                "health_check" => Field::HealthCheck,
                other => return Err(format!("{text:?}: jobs have no field {other:?} to query")),
            };
            let operator = match operator {
                "exact" => Operator::Exact,
                "iexact" => Operator::IExact,
                "ne" => Operator::NotEqual,
                "icontains" => Operator::IContains,
                "gt" => Operator::Greater,
                "lt" => Operator::Less,
                other => return Err(format!("{text:?}: unknown operator {other:?}")),
            };
            Ok(Condition {
                field,
                operator,
                value: value.to_owned(),
            })
        })
        .collect()
}

/// Whether `job` meets every condition.
pub fn matches(job: &Job, conditions: &[Condition]) -> bool {
    conditions.iter().all(|c| {
        let text = match c.field {
            Field::Id => job.id.to_string(),
            Field::Description => job.name.clone(),
            Field::Submitter => job.submitter.clone(),
            Field::State => display(job.state.as_str()),
            Field::Health => display(job.health.as_str()),
            Field::ActualDevice => job.actual_device.clone().unwrap_or_default(),
            Field::DeviceType => job.device_type.clone(),
            Field::Priority => job.priority.to_string(),
            Field::HealthCheck => {
                let wanted = c.value != "False";
                return match c.operator {
                    Operator::NotEqual => job.health_check != wanted,
                    _ => job.health_check == wanted,
                };
            }
        };
        let numbers = (text.parse::<f64>(), c.value.parse::<f64>());
        match c.operator {
            Operator::Exact => text == c.value,
            Operator::IExact => text.to_lowercase() == c.value.to_lowercase(),
            Operator::NotEqual => text != c.value,
            Operator::IContains => text.to_lowercase().contains(&c.value.to_lowercase()),
            Operator::Greater => match numbers {
                (Ok(a), Ok(b)) => a > b,
                _ => text > c.value,
            },
            Operator::Less => match numbers {
                (Ok(a), Ok(b)) => a < b,
                _ => text < c.value,
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_read_in_lavas_three_forms() {
        let parsed =
            parse("description__nightly,submitter__iexact__CI,testjob__priority__gt__10").unwrap();
        assert_eq!(parsed.len(), 3);
        assert!(parse("testcase__name__exact__x").is_err());
        assert!(parse("colour__exact__red").is_err());
        assert!(parse("state__like__x").is_err());
        assert!(parse("a").is_err());
    }
}
