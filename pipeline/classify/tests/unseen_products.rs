//! The local classifier on alerts of 30 products that appear in no labelled example (written for
//! this test in the corpus format: `tests/data/unseen.jsonl`). Only the catalog and the embeddings
//! can place them; the examples cannot have taught their family.

use std::path::Path;

use quench_classify::{corpus, eval::Scores, LocalClassifier, LocalConfig, Subject, Taxonomy};

#[test]
fn products_absent_from_the_examples_are_categorised_by_the_catalog() {
    let alerts = corpus::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/unseen.jsonl")).unwrap();
    let examples: Vec<String> =
        corpus::parse(corpus::BUILT_IN, "examples").unwrap().into_iter().map(|a| a.service.to_lowercase()).collect();
    assert!(alerts.iter().all(|a| !examples.contains(&a.service.to_lowercase())));
    let local = LocalClassifier::load(&LocalConfig::default(), Taxonomy::corpus()).unwrap();
    let subjects: Vec<Subject> = alerts.iter().map(corpus::CorpusAlert::subject).collect();
    let answers = local.classify(&subjects).unwrap();
    let mut category = Scores::default();
    let mut severity = Scores::default();
    for (alert, answer) in alerts.iter().zip(&answers) {
        let expected = alert.expected.as_ref().unwrap();
        category.add(&expected.category, &answer.category);
        severity.add(&expected.severity, &answer.severity);
        assert!(answer.confidence > 0.0 && answer.confidence <= 1.0);
    }
    let (category, severity) = (category.summary(), severity.summary());
    assert!(category.accuracy >= 0.85, "category {:.3}\n{}", category.accuracy, category.matrix());
    assert!(severity.accuracy >= 0.7, "severity {:.3}\n{}", severity.accuracy, severity.matrix());
}

#[test]
fn the_metrics_of_the_expression_place_an_alert_whose_name_says_nothing() {
    let local = LocalClassifier::load(&LocalConfig::default(), Taxonomy::corpus()).unwrap();
    let labels = std::collections::BTreeMap::from([("alertname".to_string(), "TooFarBehind".to_string())]);
    let bare = Subject::from_alert("x", &labels, &Default::default());
    let with_expr = Subject { expr: "sum by (group) (kafka_consumergroup_lag) > 1000".into(), ..bare.clone() };
    let answers = local.classify(&[bare, with_expr]).unwrap();
    assert_eq!(answers[1].category, "messaging", "{:?}", answers[1]);
    assert!(answers[1].confidence > answers[0].confidence, "{answers:?}");
}

#[test]
fn a_taxonomy_whose_categories_no_example_has_is_decided_by_the_descriptions() {
    use quench_classify::taxonomy::CategoryDescription;
    let category =
        |name: &str, description: &str| CategoryDescription { name: name.into(), description: description.into() };
    let taxonomy = Taxonomy {
        categories: vec![
            category("data-stores", "Relational databases, SQL queries, replication and connections"),
            category("queues", "Message brokers, topics, consumers and consumer lag"),
        ],
        ..Taxonomy::corpus()
    };
    let local = LocalClassifier::load(&LocalConfig::default(), taxonomy).unwrap();
    let subject = |name: &str, summary: &str| {
        let labels = std::collections::BTreeMap::from([("alertname".to_string(), name.to_string())]);
        let annotations = std::collections::BTreeMap::from([("summary".to_string(), summary.to_string())]);
        Subject::from_alert(name, &labels, &annotations)
    };
    let answers = local
        .classify(&[
            subject("PostgresqlTooManyConnections", "Too many SQL connections to the relational database"),
            subject("KafkaConsumerGroupLag", "Consumer group lag on the topic is growing"),
        ])
        .unwrap();
    let categories: Vec<&str> = answers.iter().map(|a| a.category.as_str()).collect();
    assert_eq!(categories, ["data-stores", "queues"], "{answers:?}");
}
