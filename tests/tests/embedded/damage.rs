//! Damage done by hand to the files of a stopped embedded broker: segments deleted
//! or cut, index files deleted, a corrupt `metadata.json` or `offsets.json`. Every
//! whole record that is still on disk is read back intact, offsets are never handed
//! out twice to a consumer that has seen them, and what cannot be repaired is a
//! typed error naming the file (never a panic), with the data left as it was.
//! Write faults (read-only directory, full disk) are in `faults.rs`.

use std::fs;

use rustok_iggy_connector::{ConnectorError, IggyConnector, PollFrom, StartPosition, StorageError};
use tests::faults::{
    connect, group, offsets, partition_dir, populated, publish_range, read, segment, shutdown,
    snapshot,
};
use tests::{names, within};

// ---- files deleted or cut by hand while stopped ------------------------------------

#[tokio::test]
async fn segments_deleted_by_hand_leave_gaps_and_the_rest_readable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let connector = populated(&data, 20, 0).await;
    shutdown(&connector).await;
    // The first segment and a middle one, with or without their index files.
    fs::remove_file(segment(&data, 0, 0, "log")).unwrap();
    fs::remove_file(segment(&data, 0, 8, "log")).unwrap();
    fs::remove_file(segment(&data, 0, 8, "index")).unwrap();

    let connector = connect(&data).await.unwrap();
    let expected: Vec<u64> = (4..8).chain(12..20).collect();
    assert_eq!(offsets(&connector, 0).await, expected);
    // A read starting in a gap starts after it.
    let from_gap = read(&connector, 0, PollFrom::Offset(9)).await;
    assert_eq!(from_gap.first().map(|m| m.offset), Some(12));
    let from_start = read(&connector, 0, PollFrom::Offset(0)).await;
    assert_eq!(from_start.first().map(|m| m.offset), Some(4));
    // Offsets are not reused.
    publish_range(&connector, 0, 20..21).await;
    let (stream, topic) = names("s", "t");
    let group = group();
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    let polled = within("group poll", member.poll(100)).await.unwrap();
    let polled: Vec<u64> = polled
        .iter()
        .filter(|m| m.partition == 0)
        .map(|m| m.offset)
        .collect();
    assert_eq!(
        polled,
        expected.iter().copied().chain([20]).collect::<Vec<_>>()
    );
    drop(member);
    shutdown(&connector).await;
}

#[tokio::test]
async fn segments_cut_by_hand_keep_every_whole_record_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let connector = populated(&data, 14, 0).await;
    shutdown(&connector).await;
    let record = 1304;
    // Segment 4 keeps a record and a half (offset 4); the last segment (12, with 2
    // records) loses 100 bytes of its last record (offset 13).
    let middle = fs::OpenOptions::new()
        .write(true)
        .open(segment(&data, 0, 4, "log"))
        .unwrap();
    middle.set_len(record + record / 2).unwrap();
    let last = fs::OpenOptions::new()
        .write(true)
        .open(segment(&data, 0, 12, "log"))
        .unwrap();
    last.set_len(2 * record - 100).unwrap();

    let connector = connect(&data).await.unwrap();
    let expected: Vec<u64> = (0..5).chain(8..13).collect();
    assert_eq!(offsets(&connector, 0).await, expected);
    // Offset 13 was fsynced (at shutdown) before its bytes were lost: it is not
    // handed out again.
    publish_range(&connector, 0, 14..16).await;
    shutdown(&connector).await;
}

/// A group committed past what the log still has, then new messages come: the group
/// must get them, not skip them.
async fn lost_tail_case(fsynced: bool) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (stream, topic) = names("s", "t");
    let group = group();
    let mut config = tests::faults::config(&data);
    if !fsynced {
        config.embedded.durability = rustok_iggy_connector::DurabilityPolicy::Never;
    }
    let connector = tests::open_embedded(&config).await;
    tests::create_topic(connector.as_ref(), &stream, &topic, 2).await;
    publish_range(&connector, 0, 0..10).await;
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    let polled = within("group poll", member.poll(100)).await.unwrap();
    assert_eq!(polled.len(), 10);
    member.commit(0, 9).await.unwrap();
    drop(member);
    if fsynced {
        shutdown(&connector).await;
    }
    // Without a shutdown under `never`: a crash with nothing fsynced.
    drop(connector);
    fs::remove_file(segment(&data, 0, 8, "log")).unwrap();

    let connector = connect(&data).await.unwrap();
    assert_eq!(offsets(&connector, 0).await, (0..8).collect::<Vec<_>>());
    let committed = connector
        .committed_offsets(&stream, &topic, &group)
        .await
        .unwrap();
    // Fsynced offsets are never handed out again: the lost ones (8, 9) are a gap
    // and the commit stands. Offsets that were never fsynced are given again, so
    // the commit is lowered to the last offset the log has.
    let (commit, next) = if fsynced { (9, 10) } else { (7, 8) };
    assert_eq!(committed[0], Some(commit), "fsynced: {fsynced}");
    publish_range(&connector, 0, next..next + 3).await;
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    let polled = within("group poll of the new messages", member.poll(100))
        .await
        .unwrap();
    assert_eq!(
        polled.iter().map(|m| m.offset).collect::<Vec<_>>(),
        (next..next + 3).collect::<Vec<_>>()
    );
    drop(member);
    shutdown(&connector).await;
}

#[tokio::test]
async fn a_lost_tail_does_not_hide_new_messages_from_a_group() {
    lost_tail_case(true).await;
    lost_tail_case(false).await;
}

#[tokio::test]
async fn deleted_index_files_are_rebuilt_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let connector = populated(&data, 10, 0).await;
    let all = read(&connector, 0, PollFrom::First).await;
    shutdown(&connector).await;
    for base in [0, 4, 8] {
        fs::remove_file(segment(&data, 0, base, "index")).unwrap();
    }
    fs::remove_file(segment(&data, 0, 4, "timeindex")).unwrap();
    fs::write(segment(&data, 0, 8, "timeindex"), [0xFF; 7]).unwrap();

    let connector = connect(&data).await.unwrap();
    assert_eq!(offsets(&connector, 0).await, (0..10).collect::<Vec<_>>());
    for target in [1, 5, 9] {
        let at = all[target].timestamp;
        let expected = all.iter().find(|m| m.timestamp >= at).unwrap().offset;
        let from_time = read(&connector, 0, PollFrom::Timestamp(at)).await;
        assert_eq!(
            from_time.first().map(|m| m.offset),
            Some(expected),
            "from the time of {target}"
        );
    }
    publish_range(&connector, 0, 10..11).await;
    shutdown(&connector).await;
    for base in [0, 4, 8] {
        assert!(
            segment(&data, 0, base, "index").exists(),
            "index of {base} rewritten"
        );
    }
}

// ---- corrupt metadata ------------------------------------------------------------------

fn assert_corrupt(err: &ConnectorError, file: &str) {
    match err {
        ConnectorError::Storage(StorageError::Corrupt { path, .. }) => {
            assert!(path.ends_with(file), "the error names {file}: {err}");
        }
        other => panic!("a typed Corrupt error naming {file}, got {other:?}"),
    }
    assert!(err.to_string().contains(file), "{err}");
}

#[tokio::test]
async fn a_corrupt_metadata_file_is_refused_and_the_data_left_intact() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let connector = populated(&data, 6, 2).await;
    shutdown(&connector).await;
    let metadata = data.join("metadata.json");
    let good = fs::read(&metadata).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();

    let cut = good[..good.len() / 2].to_vec();
    let empty = Vec::new();
    let too_many = text
        .replace("\"partitions\": 2", "\"partitions\": 4294967295")
        .into_bytes();
    assert_ne!(
        too_many, good,
        "the metadata file holds the partition count"
    );
    for damaged in [cut, empty, b"\x00\xff garbage".to_vec(), too_many] {
        fs::write(&metadata, &damaged).unwrap();
        let before = snapshot(&data);
        let err = connect(&data).await.unwrap_err();
        assert_corrupt(&err, "metadata.json");
        assert_eq!(snapshot(&data), before, "a refused open changes nothing");
    }

    fs::write(&metadata, &good).unwrap();
    let connector = connect(&data).await.unwrap();
    assert_eq!(offsets(&connector, 0).await, (0..6).collect::<Vec<_>>());
    assert_eq!(offsets(&connector, 1).await, vec![0, 1]);
    shutdown(&connector).await;
}

#[tokio::test]
async fn a_corrupt_offsets_file_is_refused_and_the_data_left_intact() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (stream, topic) = names("s", "t");
    let group = group();
    let connector = populated(&data, 4, 3).await;
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    member.commit(0, 2).await.unwrap();
    member.commit(1, 1).await.unwrap();
    drop(member);
    shutdown(&connector).await;

    // The broker does not guess where consumers are: it names the file and stops.
    let offsets_file = partition_dir(&data, 1).join("offsets.json");
    fs::write(&offsets_file, b"{\"groups\": {\"0\": ").unwrap();
    let before = snapshot(&data);
    let err = connect(&data).await.unwrap_err();
    assert_corrupt(&err, "offsets.json");
    assert_eq!(snapshot(&data), before, "a refused open changes nothing");

    // The operator removes it: everything is readable, the other partition keeps its
    // offset, and the group gets partition 1 again from the start (at least once).
    fs::remove_file(&offsets_file).unwrap();
    let connector = connect(&data).await.unwrap();
    assert_eq!(offsets(&connector, 0).await, (0..4).collect::<Vec<_>>());
    assert_eq!(offsets(&connector, 1).await, vec![0, 1, 2]);
    let committed = connector
        .committed_offsets(&stream, &topic, &group)
        .await
        .unwrap();
    assert_eq!(committed, vec![Some(2), None]);
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    let polled = within("group poll", member.poll(100)).await.unwrap();
    let mut got: Vec<(u32, u64)> = polled.iter().map(|m| (m.partition, m.offset)).collect();
    got.sort_unstable();
    assert_eq!(got, vec![(0, 3), (1, 0), (1, 1), (1, 2)]);
    drop(member);
    shutdown(&connector).await;
}

#[tokio::test]
async fn an_offset_committed_past_the_log_neither_panics_nor_survives_a_restart() {
    // `commit` takes any offset; the largest one used to overflow in the group's
    // next poll. After a restart it is lowered to the end of the log like any
    // offset past it.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (stream, topic) = names("s", "t");
    let group = group();
    let connector = populated(&data, 3, 0).await;
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    member.commit(0, u64::MAX).await.unwrap();
    drop(member);
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    publish_range(&connector, 1, 0..1).await;
    let polled = within("group poll", member.poll(10)).await.unwrap();
    let polled: Vec<(u32, u64)> = polled.iter().map(|m| (m.partition, m.offset)).collect();
    assert_eq!(polled, vec![(1, 0)], "partition 0 is committed to the end");
    drop(member);
    shutdown(&connector).await;

    let connector = connect(&data).await.unwrap();
    let committed = connector
        .committed_offsets(&stream, &topic, &group)
        .await
        .unwrap();
    assert_eq!(committed[0], Some(2));
    publish_range(&connector, 0, 3..4).await;
    let member = connector
        .join_group(&stream, &topic, &group, StartPosition::Earliest)
        .await
        .unwrap();
    let polled = within("group poll", member.poll(10)).await.unwrap();
    let mut polled: Vec<(u32, u64)> = polled.iter().map(|m| (m.partition, m.offset)).collect();
    polled.sort_unstable();
    assert_eq!(polled, vec![(0, 3), (1, 0)]);
    drop(member);
    shutdown(&connector).await;
}
