//! The options of import control: which events are imported (the sibling MISP connector's
//! `MISP_IMPORT_*` filters, with the `MISP_FEED_` prefix and the same value formats), the
//! guards that protect the platform (event size, events per run), and the delta push.

use super::Need::Sync;
use super::Origin::Ours;
use super::{Maybe, OptionSpec, Plain, field};
use crate::config::parsers::{ChoiceList, Flag, Int, Text, TextList};

const fn list(
    env: &'static str,
    key: &'static str,
    value: &'static Plain<TextList>,
    description: &'static str,
) -> OptionSpec {
    OptionSpec::new(env, "misp_feed", key, value, Ours, Sync, description)
}

pub(super) const IMPORT_CONTROL: &[OptionSpec] = &[
    list(
        "MISP_FEED_IMPORT_TAGS",
        "import_tags",
        &Plain(TextList, field!(misp_feed.filters.tags)),
        "Comma-separated tags: import only events carrying one of them (any case). Decided from the manifest.",
    ),
    list(
        "MISP_FEED_IMPORT_TAGS_NOT",
        "import_tags_not",
        &Plain(TextList, field!(misp_feed.filters.tags_not)),
        "Comma-separated tags: never import events carrying one of them. Decided from the manifest.",
    ),
    list(
        "MISP_FEED_IMPORT_CREATOR_ORGS",
        "import_creator_orgs",
        &Plain(TextList, field!(misp_feed.filters.creator_orgs)),
        "Comma-separated organisation names or uuids: import only events created by one of them (Orgc).",
    ),
    list(
        "MISP_FEED_IMPORT_CREATOR_ORGS_NOT",
        "import_creator_orgs_not",
        &Plain(TextList, field!(misp_feed.filters.creator_orgs_not)),
        "Comma-separated organisation names or uuids: never import events created by one of them.",
    ),
    list(
        "MISP_FEED_IMPORT_OWNER_ORGS",
        "import_owner_orgs",
        &Plain(TextList, field!(misp_feed.filters.owner_orgs)),
        "Comma-separated organisation names or uuids: import only events owned by one of them (Org; decided from the event file, an event without Org is left out).",
    ),
    list(
        "MISP_FEED_IMPORT_OWNER_ORGS_NOT",
        "import_owner_orgs_not",
        &Plain(TextList, field!(misp_feed.filters.owner_orgs_not)),
        "Comma-separated organisation names or uuids: never import events owned by one of them.",
    ),
    OptionSpec::new(
        "MISP_FEED_IMPORT_KEYWORD",
        "misp_feed",
        "import_keyword",
        &Maybe(Text, field!(misp_feed.filters.keyword)),
        Ours,
        Sync,
        "Import only events whose title (info) holds this text, in any case.",
    ),
    OptionSpec::new(
        "MISP_FEED_IMPORT_DISTRIBUTION_LEVELS",
        "misp_feed",
        "import_distribution_levels",
        &Plain(
            ChoiceList(
                &["0", "1", "2", "3", "4", "5"],
                "comma-separated MISP distribution levels, each 0 to 5",
            ),
            field!(misp_feed.filters.distribution_levels),
        ),
        Ours,
        Sync,
        "Comma-separated distribution levels (0 to 5): import only events with one of them (decided from the event file).",
    ),
    OptionSpec::new(
        "MISP_FEED_IMPORT_THREAT_LEVELS",
        "misp_feed",
        "import_threat_levels",
        &Plain(
            ChoiceList(
                &["1", "2", "3", "4"],
                "comma-separated MISP threat levels, each 1 (high) to 4 (undefined)",
            ),
            field!(misp_feed.filters.threat_levels),
        ),
        Ours,
        Sync,
        "Comma-separated threat levels (1 high, 2 medium, 3 low, 4 undefined): import only events with one of them.",
    ),
    OptionSpec::new(
        "MISP_FEED_IMPORT_ONLY_PUBLISHED",
        "misp_feed",
        "import_only_published",
        &Plain(Flag, field!(misp_feed.filters.only_published)),
        Ours,
        Sync,
        "Import only published events (decided from the event file).",
    )
    .or("false"),
    OptionSpec::new(
        "MISP_FEED_MAX_ATTRIBUTES",
        "misp_feed",
        "max_attributes",
        &Maybe(
            Int::new(1, i64::MAX, "a whole number of attributes, 1 or more"),
            field!(misp_feed.guards.max_attributes),
        ),
        Ours,
        Sync,
        "Events with more attributes than this (those in objects included) are refused and recorded; unset: no limit.",
    ),
    OptionSpec::new(
        "MISP_FEED_MAX_EVENTS_PER_RUN",
        "misp_feed",
        "max_events_per_run",
        &Maybe(
            Int::new(1, i64::MAX, "a whole number of events, 1 or more"),
            field!(misp_feed.guards.max_events_per_run),
        ),
        Ours,
        Sync,
        "At most this many events are fetched and pushed per run, oldest first; the rest stays owed to the next runs. Unset: no limit.",
    ),
    OptionSpec::new(
        "MISP_FEED_DELTA_PUSH",
        "misp_feed",
        "delta_push",
        &Plain(Flag, field!(misp_feed.delta_push)),
        Ours,
        Sync,
        "An updated event sends only its new and changed objects (and its report), not its whole bundle. Always off with MISP_FEED_REFERENCE_COMPAT.",
    )
    .or("true"),
];
