//! The classification stage: the cache, then the LLM in batches behind the circuit breaker, with
//! the local classifier as the default and the fallback.
//!
//! Incidents are looked up by signature ([`Subject::signature`]), so a storm of re-sent or
//! repeated incidents costs no call, and incidents that share a signature cost one.
//!
//! The local classifier answers first; the LLM is asked only about incidents whose local
//! confidence is below `llm.ask_below_confidence`, so kinds the local classifier knows cost no
//! tokens. Two ways in:
//! - [`Classifier::classify`] waits for the LLM (batches of `max_batch`, concurrently): what it
//!   cannot answer the local classifier answers, marked [`FALLBACK`]. `quench eval` uses it.
//! - [`Classifier::classify_now`] never waits, so that a slow or absent LLM slows only its own
//!   stage: the stream worker gets the cached answer, or the local one, marked [`FALLBACK`] while
//!   the incident is queued for the LLM when it is to be asked. A background task ([`Classifier::spawn_refiner`])
//!   sends the queue in batches of `max_batch` or after `max_wait`, caches the answers, and
//!   [`Classifier::take_refined`] tells the worker which signatures to emit again. During an
//!   outage the queue is parked; after each cool-down of the breaker one batch is the trial, and
//!   once it succeeds everything parked is sent.

use std::{
    collections::{HashMap, HashSet},
    num::NonZeroUsize,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tokio::sync::mpsc;

use crate::{
    breaker::Breaker,
    cache::Lru,
    config::{ClassifyConfig, ProviderKind},
    events::{AnsweredBy, Classified, LlmBacklogFull, LlmQueue, LlmShortCircuited},
    llm::{prompt::Item, Llm},
    redact::Redactor,
    subject::{self, Classification, Subject},
    LocalClassifier,
};

pub use quench_schemas::FALLBACK;

pub struct Classifier {
    local: LocalClassifier,
    llm: Option<Llm>,
    breaker: Mutex<Breaker>,
    cache: Mutex<Lru<String, Classification>>,
    max_batch: usize,
    max_backlog: usize,
    max_wait: Duration,
    cool_down: Duration,
    signature_labels: Vec<String>,
    severity_floor: bool,
    ask_below_confidence: f32,
    /// Longest a batch may take, retries included, before its incidents fall back.
    batch_deadline: Duration,
    calls: AtomicU64,
    queue: Mutex<Queue>,
}

/// Work for the LLM that [`Classifier::classify_now`] could not wait for.
#[derive(Default)]
struct Queue {
    sender: Option<mpsc::UnboundedSender<Subject>>,
    /// Signatures queued or in flight, so that a storm queues each once.
    queued: HashSet<String>,
    /// Signatures the LLM failed on, kept for when it is back.
    parked: HashMap<String, Subject>,
    /// Signatures the LLM answered since the last [`Classifier::take_refined`].
    refined: Vec<String>,
}

impl Classifier {
    pub fn new(config: &ClassifyConfig) -> anyhow::Result<Self> {
        let local = LocalClassifier::load(&config.local, config.taxonomy.clone())?;
        Self::with_local(config, local)
    }

    /// A stage around an already loaded local classifier (whose taxonomy it uses).
    pub fn with_local(config: &ClassifyConfig, local: LocalClassifier) -> anyhow::Result<Self> {
        let llm = match config.provider {
            ProviderKind::Local => None,
            kind => {
                let redactor = Redactor::new(&config.redact.patterns)?;
                Some(Llm::new(kind, &config.llm, local.taxonomy().clone(), redactor)?)
            }
        };
        let capacity = NonZeroUsize::new(config.cache.capacity).unwrap_or(NonZeroUsize::MIN);
        Ok(Self {
            local,
            llm,
            breaker: Mutex::new(Breaker::new(config.breaker.failures, Duration::from_millis(config.breaker.open_ms))),
            cache: Mutex::new(Lru::new(capacity, Some(Duration::from_secs(config.cache.ttl_s.max(1))))),
            max_batch: config.max_batch.max(1),
            max_backlog: config.max_backlog.max(1),
            max_wait: Duration::from_millis(config.max_wait_ms),
            cool_down: Duration::from_millis(config.breaker.open_ms.max(1)),
            signature_labels: config.cache.labels.clone(),
            severity_floor: config.llm.severity_floor,
            ask_below_confidence: config.llm.ask_below_confidence,
            batch_deadline: Duration::from_millis(config.llm.timeout_ms) * (config.llm.max_retries + 1)
                + crate::llm::MAX_WAIT * config.llm.max_retries,
            calls: AtomicU64::new(0),
            queue: Mutex::new(Queue::default()),
        })
    }

    /// LLM batches attempted so far (retries not counted).
    pub fn llm_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Incidents the LLM failed on, kept for when it answers again (the `quench_llm_parked` gauge).
    pub fn parked(&self) -> usize {
        self.queue.lock().expect("classification queue").parked.len()
    }

    /// The cache key of `subject`.
    pub fn signature(&self, subject: &Subject) -> String {
        subject::signature(subject, &self.signature_labels)
    }

    /// Classifies `subjects`, one answer each, in order, waiting for the LLM if there is one.
    pub async fn classify(&self, subjects: &[Subject]) -> anyhow::Result<Vec<Classification>> {
        let (answers, unique) = self.look_up(subjects, false);
        let fresh = self.classify_uncached(&unique).await?;
        Ok(self.complete(subjects, answers, &unique, fresh))
    }

    /// Classifies `subjects` without waiting for the LLM: from the cache, else locally (marked
    /// [`FALLBACK`] and queued for the LLM when there is one and the local answer is below its
    /// confidence bar). Needs [`Classifier::spawn_refiner`].
    pub fn classify_now(&self, subjects: &[Subject]) -> anyhow::Result<Vec<Classification>> {
        let (answers, unique) = self.look_up(subjects, true);
        let mut fresh = self.local.classify(&unique)?;
        Classified { by: AnsweredBy::Local, count: unique.len() }.emit();
        if self.llm.is_some() {
            let mut queue = self.queue.lock().expect("classification queue");
            let mut kept_local = 0;
            for (subject, c) in unique.iter().zip(&mut fresh) {
                if !self.worth_asking(c) {
                    continue;
                }
                let signature = self.signature(subject);
                let waiting = queue.parked.contains_key(&signature) || queue.queued.contains(&signature);
                if !waiting && queue.queued.len() + queue.parked.len() >= self.max_backlog {
                    // The local answer is final: nothing would ever replace a fallback.
                    kept_local += 1;
                    continue;
                }
                c.classified_by = FALLBACK.into();
                if !waiting && queue.queued.insert(signature) {
                    if let Some(sender) = &queue.sender {
                        let _ = sender.send(subject.clone());
                    }
                }
            }
            LlmQueue { queued: queue.queued.len(), parked: None }.emit();
            if kept_local > 0 {
                LlmBacklogFull { incidents: kept_local, bound: self.max_backlog }.emit();
            }
        }
        Ok(self.complete(subjects, answers, &unique, fresh))
    }

    /// Signatures whose LLM answer arrived since the last call: incidents of these signatures
    /// that were answered with [`FALLBACK`] should be classified again.
    pub fn take_refined(&self) -> Vec<String> {
        std::mem::take(&mut self.queue.lock().expect("classification queue").refined)
    }

    /// Starts the task that sends what [`Classifier::classify_now`] queued to the LLM.
    pub fn spawn_refiner(self: &Arc<Self>, handle: &tokio::runtime::Handle) {
        if self.llm.is_none() {
            return;
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        self.queue.lock().expect("classification queue").sender = Some(sender);
        handle.spawn(self.clone().refine(receiver));
    }

    /// Collects batches of `max_batch`, or what came within `max_wait` of a batch's first
    /// subject, and sends each to the LLM in a task of its own (the provider limits concurrency).
    async fn refine(self: Arc<Self>, mut receiver: mpsc::UnboundedReceiver<Subject>) {
        loop {
            let first = match tokio::time::timeout(self.cool_down, receiver.recv()).await {
                Ok(Some(subject)) => subject,
                Ok(None) => return,
                Err(_) => {
                    self.retry_parked();
                    continue;
                }
            };
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + self.max_wait;
            while batch.len() < self.max_batch {
                match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(Some(subject)) => batch.push(subject),
                    Ok(None) | Err(_) => break,
                }
            }
            for batch in by_tenant(batch) {
                let stage = self.clone();
                tokio::spawn(async move { stage.refine_batch(batch).await });
            }
        }
    }

    async fn refine_batch(&self, batch: Vec<Subject>) {
        let llm = self.llm.as_ref().expect("a refiner runs only with an LLM");
        let (answered, recovered) = self.ask(llm, &batch).await;
        let classifications = self.llm_answers(llm, &batch, &answered);
        let mut queue = self.queue.lock().expect("classification queue");
        let mut cache = self.cache.lock().expect("classification cache");
        for (subject, classification) in batch.iter().zip(classifications) {
            let signature = self.signature(subject);
            queue.queued.remove(&signature);
            match classification {
                Some(c) => {
                    cache.insert(signature.clone(), c);
                    queue.refined.push(signature);
                }
                None => {
                    queue.parked.insert(signature, subject.clone());
                }
            }
        }
        LlmQueue { queued: queue.queued.len(), parked: Some(queue.parked.len()) }.emit();
        if recovered {
            tracing::info!(
                incidents = queue.parked.len(),
                "LLM answering again; incidents classified meanwhile go to it"
            );
            let parked: Vec<(String, Subject)> = queue.parked.drain().collect();
            for (signature, subject) in parked {
                if queue.queued.insert(signature) {
                    if let Some(sender) = &queue.sender {
                        let _ = sender.send(subject);
                    }
                }
            }
        }
    }

    /// After a cool-down, one parked batch goes out as the breaker's trial.
    fn retry_parked(&self) {
        if !self.breaker.lock().expect("breaker").trial_due(now()) {
            return;
        }
        let mut queue = self.queue.lock().expect("classification queue");
        let trial: Vec<String> = queue.parked.keys().take(self.max_batch).cloned().collect();
        for signature in trial {
            let subject = queue.parked.remove(&signature).expect("parked");
            if queue.queued.insert(signature) {
                if let Some(sender) = &queue.sender {
                    let _ = sender.send(subject);
                }
            }
        }
    }

    /// Cached answers, and one representative per signature that is not cached. With
    /// `fallbacks_stand`, a cached fallback answer counts (its LLM answer is on its way).
    fn look_up(&self, subjects: &[Subject], fallbacks_stand: bool) -> (Vec<Option<Classification>>, Vec<Subject>) {
        let trust_fallbacks = fallbacks_stand || self.llm.is_none();
        let mut cache = self.cache.lock().expect("classification cache");
        let mut answers = Vec::with_capacity(subjects.len());
        let mut unique = Vec::new();
        let mut seen = HashSet::new();
        for subject in subjects {
            let signature = self.signature(subject);
            let hit = cache.get(&signature).filter(|c| trust_fallbacks || c.classified_by != FALLBACK).cloned();
            if hit.is_none() && seen.insert(signature) {
                unique.push(subject.clone());
            }
            answers.push(hit);
        }
        let hits = answers.iter().filter(|a| a.is_some()).count();
        Classified { by: AnsweredBy::Cache, count: hits }.emit();
        (answers, unique)
    }

    /// Caches `fresh` (answers for `unique`) and fills every subject's answer.
    fn complete(
        &self,
        subjects: &[Subject],
        answers: Vec<Option<Classification>>,
        unique: &[Subject],
        fresh: Vec<Classification>,
    ) -> Vec<Classification> {
        let mut by_signature: HashMap<String, Classification> = HashMap::new();
        {
            let mut cache = self.cache.lock().expect("classification cache");
            for (subject, classification) in unique.iter().zip(fresh) {
                let signature = self.signature(subject);
                cache.insert(signature.clone(), classification.clone());
                by_signature.insert(signature, classification);
            }
        }
        let taxonomy = self.local.taxonomy();
        answers
            .into_iter()
            .zip(subjects)
            .map(|(answer, subject)| {
                let mut c = answer.unwrap_or_else(|| by_signature[&self.signature(subject)].clone());
                // The cached answer came from another incident of this kind; the impact is this one's.
                c.priority = taxonomy.priority(&c.severity, subject.alerts);
                c
            })
            .collect()
    }

    /// Whether the LLM is to be asked about an incident the local classifier answered so.
    fn worth_asking(&self, local: &Classification) -> bool {
        local.confidence.is_nan() || local.confidence < self.ask_below_confidence
    }

    async fn classify_uncached(&self, subjects: &[Subject]) -> anyhow::Result<Vec<Classification>> {
        let mut answers = self.local.classify(subjects)?;
        let Some(llm) = &self.llm else {
            Classified { by: AnsweredBy::Local, count: subjects.len() }.emit();
            return Ok(answers);
        };
        let asked: Vec<usize> = (0..subjects.len()).filter(|i| self.worth_asking(&answers[*i])).collect();
        if asked.len() < subjects.len() {
            Classified { by: AnsweredBy::Local, count: subjects.len() - asked.len() }.emit();
        }
        let unsure: Vec<Subject> = asked.iter().map(|i| subjects[*i].clone()).collect();
        let tenants = by_tenant(unsure.clone());
        let batches = tenants.iter().flat_map(|t| t.chunks(self.max_batch)).map(|batch| self.ask(llm, batch));
        let answered: HashMap<String, Item> =
            futures::future::join_all(batches).await.into_iter().flat_map(|(items, _)| items).collect();
        for (i, answer) in asked.into_iter().zip(self.llm_answers(llm, &unsure, &answered)) {
            match answer {
                Some(answer) => answers[i] = answer,
                None => answers[i].classified_by = FALLBACK.into(),
            }
        }
        Ok(answers)
    }

    /// The LLM's answers as classifications, `None` where it gave none.
    fn llm_answers(
        &self,
        llm: &Llm,
        subjects: &[Subject],
        answered: &HashMap<String, Item>,
    ) -> Vec<Option<Classification>> {
        let taxonomy = self.local.taxonomy();
        let found = subjects.iter().filter(|s| answered.contains_key(&s.id)).count();
        Classified { by: AnsweredBy::Llm, count: found }.emit();
        Classified { by: AnsweredBy::Fallback, count: subjects.len() - found }.emit();
        subjects
            .iter()
            .map(|s| {
                let item = answered.get(&s.id)?;
                let severity = self.floored(&item.severity, &s.severity);
                Some(Classification {
                    priority: taxonomy.priority(&severity, s.alerts),
                    severity,
                    category: item.category.clone(),
                    confidence: item.confidence.unwrap_or(0.8),
                    summary: item.summary.clone(),
                    classified_by: llm.label().to_string(),
                })
            })
            .collect()
    }

    /// The LLM's severity, or the alerts' own when it is lower and `severity_floor` is set: the
    /// labels are what the alert's author decided, and routing and paging follow severity, so a
    /// model's misreading (or a crafted text) must not be able to silence a critical alert.
    fn floored(&self, answered: &str, own: &str) -> String {
        let scale = &self.local.taxonomy().scale;
        if self.severity_floor && scale.rank(Some(own)) > scale.rank(Some(answered)) {
            scale.level(own).unwrap_or(own).to_string()
        } else {
            answered.to_string()
        }
    }

    /// One batch through the breaker and the deadline: what it answered, by id, and whether this
    /// call closed an open breaker.
    async fn ask(&self, llm: &Llm, batch: &[Subject]) -> (HashMap<String, Item>, bool) {
        if !self.breaker.lock().expect("breaker").allow(now()) {
            LlmShortCircuited.emit();
            return (HashMap::new(), false);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let outcome = tokio::time::timeout(self.batch_deadline, llm.classify(batch)).await;
        let mut breaker = self.breaker.lock().expect("breaker");
        match outcome {
            Ok(Ok(items)) => {
                let recovered = breaker.success();
                (items, recovered)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, incidents = batch.len(), "LLM batch failed; the local classifier answers");
                breaker.failure(now());
                (HashMap::new(), false)
            }
            Err(_) => {
                tracing::warn!(incidents = batch.len(), "LLM batch past its deadline; the local classifier answers");
                breaker.failure(now());
                (HashMap::new(), false)
            }
        }
    }
}

/// The breaker's time: tokio's clock, the one the refiner's cool-down timer runs on, so that the
/// two agree and tests can stop and move it (`tokio::time::pause`) instead of racing it.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// `subjects` split by tenant, each tenant's in their order: one LLM request never holds two
/// tenants' texts (an answer written for one could otherwise be matched to, or shown in, the other).
fn by_tenant(subjects: Vec<Subject>) -> Vec<Vec<Subject>> {
    let mut groups: Vec<Vec<Subject>> = Vec::new();
    for subject in subjects {
        match groups.iter_mut().find(|g| g[0].tenant == subject.tenant) {
            Some(group) => group.push(subject),
            None => groups.push(vec![subject]),
        }
    }
    groups
}
