"""What the shared-path and S3 blob stores do beyond the contract: temp files of several daemons, and
a bucket prefix shared with other objects."""

from __future__ import annotations

import os
import time

from proxy.store.remote_blobs import STALE_TEMP_SECONDS, S3BlobStore, SharedBlobStore, s3_client


def test_a_daemon_removes_only_stale_temp_files_of_others_and_its_own_at_close(tmp_path, keyring):
    other = tmp_path / "tmp" / "other-host.4242"
    other.mkdir(parents=True)
    stale, fresh = other / "stale.part", other / "fresh.part"
    stale.write_bytes(b"left by a daemon that died")
    fresh.write_bytes(b"another daemon is writing this")
    old = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(stale, (old, old))
    dead = tmp_path / "tmp" / "dead-host.1"
    dead.mkdir()
    (dead / "x.part").write_bytes(b"")
    os.utime(dead / "x.part", (old, old))

    store = SharedBlobStore(tmp_path, keyring)
    assert not stale.exists() and fresh.exists() and not dead.exists()
    writer = store.writer()
    writer.write(os.urandom(1000))
    blob_id = writer.commit(durable=False).blob_id
    assert list(store.ids()) == [blob_id]  # a file even when small: no SQLite on a shared path
    assert store.path(blob_id).is_file()
    own = [d for d in (tmp_path / "tmp").iterdir() if d.name != "other-host.4242"]
    assert len(own) == 1
    store.close()
    assert not own[0].exists() and fresh.exists()


def test_s3_objects_under_the_prefix_that_are_no_blobs_are_left_alone(
    tmp_path, keyring, s3_endpoint, s3_credentials
):
    client = s3_client(region="us-east-1", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="shared-bucket")
    client.put_object(Bucket="shared-bucket", Key="proxy/README", Body=b"not a blob")
    client.put_object(Bucket="shared-bucket", Key="elsewhere/" + "a" * 64, Body=b"outside the prefix")
    store = S3BlobStore(client, "shared-bucket", "proxy/", keyring, tmp_path / "tmp" / "s3")
    writer = store.writer()
    writer.write(b"content")
    blob_id = writer.commit().blob_id
    assert list(store.ids()) == [blob_id]
    assert store.disk_size(blob_id) > len(b"content")
    assert list((tmp_path / "tmp" / "s3").iterdir()) == []  # the temp file went with the put
    keys = sorted(item["Key"] for item in client.list_objects_v2(Bucket="shared-bucket")["Contents"])
    assert keys == sorted(["proxy/README", "elsewhere/" + "a" * 64, "proxy/" + blob_id])
    store.close()
