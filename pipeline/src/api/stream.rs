//! `GET /api/v1/stream`: incident updates as they commit (read_committed from `incidents`), as
//! server-sent events named `incident` whose data is the incident's JSON, only of the tenants
//! the token sees. An event's id is the position after it in every partition (`0:15,1:7,2:9`):
//! a client that reconnects with it as `Last-Event-ID` (browsers do) gets what committed after
//! it, and nothing twice (an offset outside what the partition holds is brought within it; a
//! partition the id does not name, added since, is read from its start). Without one, the stream
//! starts at the end. Each connection reads with a Kafka consumer of its own, assigned rather
//! than in a group, committing nothing.

use std::{collections::BTreeMap, convert::Infallible, sync::Arc, time::Duration};

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::sse::{Event, KeepAlive, Sse},
};
use futures::{stream, Stream};
use quench_schemas::{Decoder, Incident};
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    Message, Offset, TopicPartitionList,
};

use serde_json::Value;

use super::{incidents::FIELDS, Api, ApiToken, Failure};
use crate::{alertmanager_api::rfc3339, kafka::reader_config};

/// Next offset per partition.
type Positions = BTreeMap<i32, i64>;

pub async fn stream(
    State(api): State<Api>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Failure> {
    let token = api.caller(&headers)?.token.clone();
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(value.to_str().ok().and_then(parse).ok_or_else(|| {
            Failure::parameter(StatusCode::BAD_REQUEST, "Last-Event-ID", "not an event id of this stream")
        })?),
    };
    let (consumer, positions) = subscribe(&api, resume).await.map_err(Failure::kafka)?;
    let state = Reader { consumer, positions, decoder: api.decoder.clone(), token };
    let events = stream::unfold(state, |mut reader| async move {
        let event = reader.next().await;
        Some((Ok(event), reader))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// A consumer assigned to every partition of `incidents`, at `resume` or at the end.
async fn subscribe(api: &Api, resume: Option<Positions>) -> anyhow::Result<(StreamConsumer, Positions)> {
    let (kafka, topic) = (api.kafka.clone(), api.topic.clone());
    tokio::task::spawn_blocking(move || {
        let consumer: StreamConsumer = reader_config(&kafka, "api-stream", "quench-api-stream").create()?;
        let metadata = consumer.fetch_metadata(Some(&topic), kafka.connect_timeout())?;
        let mut assignment = TopicPartitionList::new();
        let mut positions = Positions::new();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()).map(|p| p.id()) {
            let (low, high) = consumer.fetch_watermarks(&topic, partition, kafka.connect_timeout())?;
            let at = match &resume {
                Some(resume) => resume.get(&partition).map_or(low, |&offset| offset.clamp(low, high)),
                None => high,
            };
            assignment.add_partition_offset(&topic, partition, Offset::Offset(at))?;
            positions.insert(partition, at);
        }
        consumer.assign(&assignment)?;
        Ok((consumer, positions))
    })
    .await?
}

struct Reader {
    consumer: StreamConsumer,
    positions: Positions,
    decoder: Arc<Decoder<Incident>>,
    token: ApiToken,
}

impl Reader {
    /// The next incident the token sees, as an event; what cannot be read is logged and skipped.
    async fn next(&mut self) -> Event {
        loop {
            let (partition, offset, payload) = match self.consumer.recv().await {
                Ok(message) => (message.partition(), message.offset(), message.payload().map(<[u8]>::to_vec)),
                Err(e) => {
                    tracing::warn!(error = %e, "reading incidents for a stream");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            self.positions.insert(partition, offset + 1);
            let Some(payload) = payload else { continue };
            let incident = match self.decoder.decode(&payload).await {
                Ok(incident) => incident,
                Err(e) => {
                    tracing::warn!(error = %e, partition, offset, "an incident the stream cannot decode");
                    continue;
                }
            };
            if !self.token.sees(&incident.tenant) {
                continue;
            }
            match Event::default().event("incident").id(format(&self.positions)).json_data(shaped(&incident)) {
                Ok(event) => return event,
                Err(e) => tracing::warn!(error = %e, "an incident the stream cannot write"),
            }
        }
    }
}

/// The incident as the rest of the API answers it: [`FIELDS`], times in RFC 3339, and its
/// version (to tell a newer update from an older one).
fn shaped(incident: &Incident) -> Value {
    let mut value = serde_json::to_value(incident).unwrap_or_default();
    if let Some(fields) = value.as_object_mut() {
        fields.retain(|name, _| name == "version" || FIELDS.iter().any(|(field, ..)| field == name));
        for time in ["first_seen", "last_seen", "acknowledged_at", "resolved_at"] {
            if let Some(ms) = fields.get(time).and_then(Value::as_i64) {
                fields.insert(time.into(), rfc3339(ms).into());
            }
        }
    }
    value
}

fn format(positions: &Positions) -> String {
    positions.iter().map(|(p, o)| format!("{p}:{o}")).collect::<Vec<_>>().join(",")
}

fn parse(text: &str) -> Option<Positions> {
    text.split(',')
        .map(|pair| {
            let (p, o) = pair.split_once(':')?;
            Some((p.trim().parse().ok()?, o.trim().parse().ok().filter(|o: &i64| *o >= 0)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_id_is_every_partitions_next_offset_and_reads_back() {
        let positions = Positions::from([(0, 15), (1, 7), (2, 0)]);
        assert_eq!(format(&positions), "0:15,1:7,2:0");
        assert_eq!(parse("0:15,1:7,2:0"), Some(positions));
        for bad in ["", "0:15,x", "0:-1", "0-15"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
