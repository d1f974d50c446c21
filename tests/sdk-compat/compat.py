"""Drives a running Herald through the official SuprSend Python SDK (suprsend-py-sdk) and checks
what comes back. Run by scripts/sdk-compat, which starts Herald and passes these variables:

    HERALD_URL, HERALD_TEST_WORKSPACE_KEY, HERALD_TEST_WORKSPACE_SECRET, HERALD_TEST_API_KEY,
    HERALD_LIVE_WORKSPACE_KEY, HERALD_LIVE_WORKSPACE_SECRET, HERALD_LIVE_API_KEY

Every check runs in both auth modes (HMAC-signed requests and bearer API key). Prints one line per
check and ends with "N passed, M failed"; exits 1 if any failed.
"""

import os
import sys
import traceback

from suprsend import Event, Suprsend, WorkflowTriggerRequest
from suprsend.exception import SuprsendAPIException

URL = os.environ["HERALD_URL"]


def keys(env):
    e = env.upper()
    return (
        os.environ[f"HERALD_{e}_WORKSPACE_KEY"],
        os.environ[f"HERALD_{e}_WORKSPACE_SECRET"],
        os.environ[f"HERALD_{e}_API_KEY"],
    )


def client(mode, env="test"):
    workspace_key, secret, api_key = keys(env)
    if mode == "hmac":
        return Suprsend(workspace_key, secret, base_url=URL)
    return Suprsend.with_workspace_api_key(workspace_key, api_key, base_url=URL)


def expect_error(status, call, *args, mentions=None):
    try:
        call(*args)
    except SuprsendAPIException as e:
        assert e.status_code == status, f"expected {status}, got {e.status_code}: {e.message}"
        if mentions:
            assert mentions in (e.message or ""), f"'{mentions}' not in '{e.message}'"
        return e
    raise AssertionError(f"expected a {status} error, the call succeeded")


def values(user, channel):
    return [i["value"] for i in user.get(channel, [])]


# ---------------------------------------------------------------- checks, each (supr, prefix)


def upsert_and_get(supr, p):
    uid = f"{p}-ada"
    made = supr.users.upsert(uid, {
        "name": "Ada Lovelace", "country": "GBR", "$timezone": "Europe/London",
        "$email": ["Ada@Example.com"], "plan": "pro", "logins": 1,
    })
    assert made["distinct_id"] == uid, made
    assert made["properties"]["country"] == "GB", made  # alpha-3 normalised
    got = supr.users.get(uid)
    assert got["properties"]["name"] == "Ada Lovelace", got
    assert got["properties"]["plan"] == "pro", got
    assert values(got, "$email") == ["Ada@example.com"], got
    # Upsert again: properties set, identities added to those held.
    again = supr.users.upsert(uid, {"plan": "team", "$email": ["ada2@example.com"]})
    assert again["properties"]["plan"] == "team", again
    assert values(again, "$email") == ["Ada@example.com", "ada2@example.com"], again


def edit_with_every_operator_and_channel_helper(supr, p):
    uid = f"{p}-ops"
    supr.users.upsert(uid, {"name": "Ops", "tags": ["a"], "score": 1, "keep": "x", "gone": 1})
    e = supr.users.get_edit_instance(uid)
    e.set("plan", "pro")
    e.set({"city": "Paris", "vip": True})
    e.set_once("first_seen", "2026-01-01")
    e.set_once("keep", "overwritten?")
    e.increment("score", 2)
    e.increment({"visits": 1})
    e.append("tags", "b")
    e.remove("tags", "a")
    e.unset("gone")
    e.set_preferred_language("fr")
    e.set_locale("fr_FR")
    e.set_timezone("Europe/Paris")
    e.add_email("ops@example.com")
    e.add_sms("+14155550123")
    e.add_whatsapp("+14155550124")
    e.add_androidpush("fcm-token-123", provider="fcm")
    e.add_iospush("apns-token-456", provider="apns")
    e.add_webpush({"endpoint": "https://push.example.com/abc", "keys": {"p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", "auth": "BTBZMqHH6r4Tts7J_aSIgg"}}, provider="vapid")
    e.add_slack({"email": "ops@example.com", "access_token": "xoxb-123"})
    e.add_ms_teams({"tenant_id": "t1", "service_url": "https://smba.trafficmanager.net/amer", "conversation_id": "c1"})
    got = supr.users.edit(e)
    props = got["properties"]
    assert props["plan"] == "pro" and props["city"] == "Paris" and props["vip"] is True, props
    assert props["first_seen"] == "2026-01-01" and props["keep"] == "x", props
    assert props["score"] == 3 and props["visits"] == 1, props
    assert props["tags"] == ["b"], props
    assert "gone" not in props, props
    assert props["$preferred_language"] == "fr" and props["$locale"] == "fr_FR", props
    assert props["$timezone"] == "Europe/Paris", props
    for channel in ["$email", "$sms", "$whatsapp", "$androidpush", "$iospush", "$webpush", "$slack", "$ms_teams"]:
        assert len(got.get(channel, [])) == 1, (channel, got)
    assert values(got, "$sms") == ["+14155550123"], got
    assert got["$androidpush"][0]["id_provider"] == "fcm", got

    # And every remove helper takes them away again.
    r = supr.users.get_edit_instance(uid)
    r.remove_email("ops@example.com")
    r.remove_sms("+14155550123")
    r.remove_whatsapp("+14155550124")
    r.remove_androidpush("fcm-token-123", provider="fcm")
    r.remove_iospush("apns-token-456", provider="apns")
    r.remove_webpush({"endpoint": "https://push.example.com/abc", "keys": {"p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", "auth": "BTBZMqHH6r4Tts7J_aSIgg"}}, provider="vapid")
    r.remove_slack({"email": "ops@example.com", "access_token": "xoxb-123"})
    r.remove_ms_teams({"tenant_id": "t1", "service_url": "https://smba.trafficmanager.net/amer", "conversation_id": "c1"})
    got = supr.users.edit(r)
    for channel in ["$email", "$sms", "$whatsapp", "$androidpush", "$iospush", "$webpush", "$slack", "$ms_teams"]:
        assert got.get(channel, []) == [], (channel, got)
    # Edit by id with a raw payload, as the SDK also allows.
    raw = supr.users.edit(uid, {"operations": [{"$set": {"raw": 1}}]})
    assert raw["properties"]["raw"] == 1, raw


def unset_lists_whole_channels_and_push_metadata(supr, p):
    uid = f"{p}-unset"
    supr.users.upsert(uid, {"a": 1, "b": 2, "c": 3, "$sms": ["+14155550100"], "$email": ["u1@example.com", "u2@example.com"]})
    e = supr.users.get_edit_instance(uid)
    e.unset(["a", "b"])                   # several keys at once
    e.unset("$sms")                       # a whole channel
    e.add_androidpush("fcm-tok-b", provider="fcm", bundle_id="com.example.app")
    e.add_iospush("apns-tok-b", provider="apns", bundle_id="com.example.ios")
    e.append({"$email": "u3@example.com"})  # a channel through the generic append(dict)
    e.remove({"$email": "u1@example.com"})  # and through the generic remove(dict)
    e.append({"$androidpush": "fcm-tok-c", "$id_provider": "xiaomi"})  # sibling keys read from the dict
    got = supr.users.edit(e)
    assert got["properties"] == {"c": 3}, got
    assert got.get("$sms", []) == [], got
    assert values(got, "$email") == ["u2@example.com", "u3@example.com"], got
    by_token = {i["value"]: i for i in got["$androidpush"]}
    assert by_token["fcm-tok-b"]["id_provider"] == "fcm", got
    assert by_token["fcm-tok-b"]["bundle_id"] == "com.example.app", got
    assert by_token["fcm-tok-c"]["id_provider"] == "xiaomi", got
    assert got["$iospush"][0]["id_provider"] == "apns" and got["$iospush"][0]["bundle_id"] == "com.example.ios", got
    for channel in ["$email", "$androidpush", "$iospush"]:
        for identity in got[channel]:
            assert identity["status"] == "active" and identity["perma_status"] == "active", identity
    e = supr.users.get_edit_instance(uid)
    e.unset(["$email", "$androidpush", "$iospush"])
    got = supr.users.edit(e)
    for channel in ["$email", "$androidpush", "$iospush"]:
        assert got.get(channel, []) == [], (channel, got)


def unusual_ids_and_unicode_values(supr, p):
    # py percent-encodes path segments (quote(x, safe="")); HMAC covers the encoded form and the
    # body's raw UTF-8 bytes (ensure_ascii=False).
    for i, raw in enumerate(["user@example.com", "a b+c", "a/b", "üser~!*'()", "ада 漢字"]):
        uid = f"{p}-{i}-{raw}"
        made = supr.users.upsert(uid, {"name": "Zoë 漢字 🚀", "note": raw})
        assert made["distinct_id"] == uid, made
        e = supr.users.get_edit_instance(uid)
        e.set("city", "München")
        edited = supr.users.edit(e)
        assert edited["properties"]["city"] == "München", edited
        got = supr.users.get(uid)
        assert got["distinct_id"] == uid and got["properties"]["name"] == "Zoë 漢字 🚀", got
        supr.users.delete(uid)
        expect_error(404, supr.users.get, uid)


def async_edit(supr, p):
    uid = f"{p}-async"
    e = supr.users.get_edit_instance(uid)
    e.set("source", "event")
    e.add_email("async@example.com")
    res = supr.users.async_edit(e)
    assert res["success"] is True, res
    got = supr.users.get(uid)
    assert got["properties"]["source"] == "event", got
    assert values(got, "$email") == ["async@example.com"], got
    # A refused async edit raises, names the field, and changes nothing.
    bad = supr.users.get_edit_instance(uid)
    bad.set("source", "changed")
    bad.add_email("not-an-email")
    expect_error(400, supr.users.async_edit, bad, mentions="$email")
    assert supr.users.get(uid)["properties"]["source"] == "event"


def bulk_edit(supr, p):
    bulk = supr.users.get_bulk_edit_instance()
    for i in range(5):
        e = supr.users.get_edit_instance(f"{p}-bulk-{i}")
        e.set("n", i)
        e.add_email(f"bulk{i}@example.com")
        bulk.append(e)
    res = bulk.save()
    assert res.status == "success" and res.success == 5 and res.failure == 0, str(res)
    for i in range(5):
        got = supr.users.get(f"{p}-bulk-{i}")
        assert got["properties"]["n"] == i, got
        assert values(got, "$email") == [f"bulk{i}@example.com"], got
    # One malformed record refuses the whole call (400 naming the record and field), nothing applies.
    bulk = supr.users.get_bulk_edit_instance()
    for i in range(3):
        e = supr.users.get_edit_instance(f"{p}-bulk-{i}")
        e.set("n", 10 + i)
        if i == 1:
            e.add_email("not-an-email")
        bulk.append(e)
    res = bulk.save()
    assert res.status == "fail" and res.total == 3 and res.failure == 3, str(res)
    assert res.failed_records[0]["code"] == 400, res.failed_records
    assert "[1].$user_operations" in res.failed_records[0]["error"], res.failed_records
    assert [supr.users.get(f"{p}-bulk-{i}")["properties"]["n"] for i in range(3)] == [0, 1, 2]


def list_with_cursor(supr, p):
    for i in range(5):
        supr.users.upsert(f"{p}-list-{i}", {"name": f"L{i}"})
    first = supr.users.list({"limit": 2})
    assert len(first["results"]) == 2, first
    assert first["meta"]["has_next"] is True, first
    # The documented meta: {count, limit, has_prev, has_next, before, after}.
    assert {"count", "limit", "has_prev", "has_next", "before", "after"} <= set(first["meta"]), first
    assert isinstance(first["meta"]["count"], int) and first["meta"]["count"] >= 5, first
    seen = [u["distinct_id"] for u in first["results"]]
    after = first["meta"]["after"]
    while after:
        page = supr.users.list({"limit": 2, "after": after})
        seen += [u["distinct_id"] for u in page["results"]]
        after = page["meta"]["after"]
    assert len(seen) == len(set(seen)), "no profile twice"
    second = supr.users.list({"limit": 2, "after": first["meta"]["after"]})
    assert second["meta"]["has_prev"] is True, second
    back = supr.users.list({"limit": 2, "before": second["meta"]["before"]})
    assert [u["distinct_id"] for u in back["results"]] == [u["distinct_id"] for u in first["results"]], back
    for u in first["results"]:
        assert {"distinct_id", "properties", "created_at", "updated_at"} <= set(u), u
    for i in range(5):
        assert f"{p}-list-{i}" in seen, (i, seen)
    filtered = supr.users.list({"limit": 10, "q": f"{p}-list-"})
    assert sorted(u["distinct_id"] for u in filtered["results"]) == [f"{p}-list-{i}" for i in range(5)], filtered


def merge(supr, p):
    a, b = f"{p}-primary", f"{p}-secondary"
    supr.users.upsert(a, {"name": "Primary", "plan": "pro", "$email": ["a@example.com"]})
    supr.users.upsert(b, {"name": "Secondary", "city": "Oslo", "$email": ["b@example.com"]})
    merged = supr.users.merge(a, b)
    assert merged["properties"]["name"] == "Primary", merged
    assert merged["properties"]["city"] == "Oslo", merged
    assert sorted(values(merged, "$email")) == ["a@example.com", "b@example.com"], merged
    expect_error(404, supr.users.get, b)


def delete_and_bulk_delete(supr, p):
    supr.users.upsert(f"{p}-del", {"name": "D"})
    res = supr.users.delete(f"{p}-del")
    assert res["success"] is True, res
    expect_error(404, supr.users.get, f"{p}-del")
    for i in range(3):
        supr.users.upsert(f"{p}-bd-{i}", {"name": "B"})
    res = supr.users.bulk_delete({"distinct_ids": [f"{p}-bd-{i}" for i in range(3)] + [f"{p}-never"]})
    assert res["success"] is True, res
    for i in range(3):
        expect_error(404, supr.users.get, f"{p}-bd-{i}")
    expect_error(404, supr.users.delete, f"{p}-del", mentions=f"{p}-del")


def errors(supr, p):
    uid = f"{p}-err"
    supr.users.upsert(uid, {"name": "E"})
    expect_error(400, supr.users.upsert, uid, {"$email": ["not-an-email"]}, mentions="$email")
    expect_error(400, supr.users.upsert, uid, {"country": "Atlantis"}, mentions="country")
    expect_error(400, supr.users.edit, uid, {"operations": [{"$set": {"$timezone": "Mars/Olympus"}}]}, mentions="timezone")
    expect_error(404, supr.users.get, f"{p}-missing")
    # Editing a user who does not exist yet creates them (as SuprSend does).
    created = supr.users.edit(f"{p}-new-by-edit", {"operations": [{"$set": {"x": 1}}]})
    assert created["distinct_id"] == f"{p}-new-by-edit" and created["properties"] == {"x": 1}, created
    bad = supr.users.get_edit_instance(uid)
    bad.set("name", "changed")
    bad.add_email("still-not-an-email")
    expect_error(400, supr.users.edit, bad, mentions="$email")
    bad = supr.users.get_edit_instance(uid)
    bad.set("country", "XX")
    expect_error(400, supr.users.edit, bad, mentions="country")
    bad = supr.users.get_edit_instance(uid)
    bad.add_sms("12345")
    expect_error(400, supr.users.edit, bad, mentions="$sms")
    # Nothing changed by the refused calls.
    got = supr.users.get(uid)
    assert got["properties"] == {"name": "E"} and got.get("$email", []) == [], got


def environments_never_cross(supr, p, mode):
    live = client(mode, "live")
    uid = f"{p}-twin"
    supr.users.upsert(uid, {"plan": "test-plan"})
    expect_error(404, live.users.get, uid)
    live.users.upsert(uid, {"plan": "live-plan"})
    assert supr.users.get(uid)["properties"]["plan"] == "test-plan"
    assert live.users.get(uid)["properties"]["plan"] == "live-plan"
    live.users.delete(uid)
    assert supr.users.get(uid)["properties"]["plan"] == "test-plan"
    live_only = f"{p}-live-only"
    live.users.upsert(live_only, {"plan": "live"})
    expect_error(404, supr.users.get, live_only)
    expect_error(404, supr.users.delete, live_only)
    assert live.users.get(live_only)["properties"]["plan"] == "live"
    names = [u["distinct_id"] for u in supr.users.list({"limit": 100, "q": live_only})["results"]]
    assert live_only not in names, names


def bad_credentials_are_refused(supr, p, mode):
    workspace_key, secret, api_key = keys("test")
    wrong = (Suprsend(workspace_key, "wrong-secret-" + secret, base_url=URL) if mode == "hmac"
             else Suprsend.with_workspace_api_key(workspace_key, "hb_wrong_" + api_key, base_url=URL))
    expect_error(401, wrong.users.get, f"{p}-ada")


def create_categories(env):
    """Categories are Herald's own API (the SDK has no call for them): plain HTTP, bearer key."""
    import requests
    _, _, api_key = keys(env)
    for body in [
        {"category": "newsletter", "name": "Newsletter", "section": "Marketing", "default_preference": "opt_in"},
        {"category": "security", "name": "Security", "default_preference": "mandatory"},
    ]:
        r = requests.post(f"{URL}/v1/category/", json=body, headers={"Authorization": f"Bearer {api_key}"})
        assert r.status_code in (201, 409), (r.status_code, r.text)


def preferences(supr, p):
    uid = f"{p}-prefs"
    supr.users.upsert(uid, {"$email": ["prefs@example.com"]})
    full = supr.users.get_full_preference(uid)
    cats = [c for s in full["sections"] for c in s["subcategories"]]
    assert {c["category"] for c in cats} == {"newsletter", "security"}, full
    assert {"channel": "email", "is_restricted": False} in full["channel_preferences"], full
    one = supr.users.get_category_preference(uid, "newsletter")
    assert one["preference"] == "opt_in" and one["is_editable"] is True, one
    assert {"channel", "preference", "is_editable"} <= set(one["channels"][0]), one
    updated = supr.users.update_category_preference(uid, "newsletter", {"preference": "opt_in", "opt_out_channels": ["sms"]})
    sms = [c for c in updated["channels"] if c["channel"] == "sms"][0]
    assert sms["preference"] == "opt_out", updated
    out = supr.users.update_category_preference(uid, "newsletter", {"preference": "opt_out", "opt_out_channels": None})
    assert out["preference"] == "opt_out", out
    hidden = supr.users.get_category_preference(uid, "newsletter", {"show_opt_out_channels": False})
    assert hidden["channels"] == [], hidden
    chans = supr.users.update_global_channels_preference(uid, {"channel_preferences": [{"channel": "email", "is_restricted": True}]})
    assert {"channel": "email", "is_restricted": True} in chans["channel_preferences"], chans
    again = supr.users.get_full_preference(uid, {"show_opt_out_channels": True})
    assert {"channel": "email", "is_restricted": True} in again["channel_preferences"], again
    expect_error(400, supr.users.update_category_preference, uid, "security", {"preference": "opt_out"}, mentions="mandatory")
    expect_error(400, supr.users.update_category_preference, uid, "newsletter", {"preference": "sometimes"}, mentions="preference")
    expect_error(404, supr.users.get_category_preference, uid, "no-such-category")
    expect_error(404, supr.users.get_full_preference, f"{p}-nobody")


def create_workflow(env):
    """Workflows are Herald's own API: plain HTTP, bearer key. Email only, and no email provider is
    configured in this run, so every message is recorded as skipped `no_provider`."""
    import requests
    _, _, api_key = keys(env)
    body = {
        "slug": "sdk-welcome", "name": "SDK welcome", "category": "newsletter", "policy": "all",
        "channels": {"email": {"subject": "Hi", "text": "Hello {{$recipient.name}}, {{code}}"}},
        "events": ["sdk_signed_up"],
    }
    r = requests.post(f"{URL}/v1/workflow/", json=body, headers={"Authorization": f"Bearer {api_key}"})
    assert r.status_code in (201, 409), (r.status_code, r.text)


def notifications(supr, p):
    """workflows.trigger, a bulk trigger, track_event, bulk_events and messages.list of the SDK."""
    uid = f"{p}-notif"
    supr.users.upsert(uid, {"name": "Nia", "$email": ["nia@example.com"]})
    request = WorkflowTriggerRequest(
        body={"workflow": "sdk-welcome", "recipients": [uid], "data": {"code": "42"}},
        idempotency_key=f"{p}-trigger-1")
    first = supr.workflows.trigger(request)
    assert first["success"] and first["status_code"] == 202 and first["message"], first
    again = supr.workflows.trigger(request)
    assert again["success"] and again["message"] == first["message"], (first, again)
    bad = supr.workflows.trigger(WorkflowTriggerRequest(body={"workflow": "no-such", "recipients": [uid], "data": {}}))
    assert not bad["success"] and bad["status_code"] == 404 and "no-such" in bad["message"], bad
    bulk = supr.workflows.bulk_trigger_instance()
    bulk.append(
        WorkflowTriggerRequest(body={"workflow": "sdk-welcome", "recipients": [uid], "data": {"code": "43"}}),
        WorkflowTriggerRequest(body={"workflow": "no-such", "recipients": [uid], "data": {}}),
    )
    result = bulk.trigger()
    assert (result.status, result.total, result.success, result.failure) == ("partial", 2, 1, 1), str(result)
    tracked = supr.track_event(Event(uid, "sdk_signed_up", {"code": "44"}))
    assert tracked["success"] and tracked["status_code"] == 202, tracked
    events = supr.bulk_events.new_instance()
    events.append(Event(uid, "sdk_signed_up", {"code": "45"}), Event(uid, "nobody_listens", {}))
    sent = events.trigger()
    assert (sent.status, sent.total, sent.success, sent.failure) == ("success", 2, 2, 0), str(sent)
    log = supr.messages.list({"recipient_id": uid})
    results = log["results"]
    # One message per trigger that ran: the first (its repeat recorded nothing), the bulk's good
    # item, the tracked event and the bulk-tracked one (nobody listens to the other).
    assert len(results) == 4, log
    for m in results:
        assert m["recipient"]["distinct_id"] == uid and m["channel"] == "email", m
        assert m["status"] == "skipped" and m["reason"] == "no_provider", m
    assert {"count", "limit", "has_next", "after"} <= set(log["meta"]), log


CHECKS = [
    upsert_and_get,
    edit_with_every_operator_and_channel_helper,
    unset_lists_whole_channels_and_push_metadata,
    unusual_ids_and_unicode_values,
    async_edit,
    bulk_edit,
    list_with_cursor,
    merge,
    delete_and_bulk_delete,
    errors,
    preferences,
    notifications,
]
MODE_CHECKS = [environments_never_cross, bad_credentials_are_refused]


def main():
    passed, failed = 0, 0
    create_categories("test")
    create_workflow("test")
    for mode in ["hmac", "bearer"]:
        supr = client(mode)
        runs = [(c, (supr, mode)) for c in CHECKS] + [(c, (supr, mode, mode)) for c in MODE_CHECKS]
        for check, args in runs:
            name = f"{mode}: {check.__name__}"
            try:
                check(*args)
            except Exception as e:  # noqa: BLE001 - report every failure, keep going
                failed += 1
                print(f"FAIL {name}: {e!r}")
                traceback.print_exc()
            else:
                passed += 1
                print(f"PASS {name}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
