"""Drives mem0's own `MemoryClient` (package mem0ai, from .venv-mem0) against recallstack, one phase
at a time; run by tests/e2e/test_mem0_client.py with that venv's Python, never imported by the
project (it cannot be: mem0 is not in .venv). Prints one JSON object: what mem0's client returned.

    python mem0_driver.py PHASE BASE_URL API_KEY USER_ID [JSON of the earlier phases' answers]
"""

import json
import sys
import time
import uuid

from mem0 import MemoryClient
from mem0.exceptions import MemoryError as Mem0Error


def eventually(call, attempts=100):
    """mem0's add is asynchronous on its platform too: a memory is readable moments later."""
    for _ in range(attempts):
        try:
            return call()
        except Mem0Error:
            time.sleep(0.1)
    return call()


def refusal(call):
    """(exception class, status, message) of a call mem0's client raises on."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - what mem0 raises is what is checked
        return {"type": type(exc).__name__, "status": (getattr(exc, "debug_info", None) or {}).get("status_code"),
                "message": str(exc)}
    return None


def main():
    phase, base, key, user = sys.argv[1:5]
    earlier = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    if phase == "bad-key":
        print(json.dumps({"bad_key": refusal(lambda: MemoryClient(api_key="rsk_" + "x" * 43, host=base))}))
        return
    client = MemoryClient(api_key=key, host=base)
    out = {"org_id": client.org_id, "project_id": client.project_id}
    if phase == "add":
        out["text"] = client.add("I prefer green tea in the morning", user_id=user, agent_id="helper",
                                 metadata={"topic": "drinks"}, infer=False)
        out["messages"] = client.add([{"role": "user", "content": "My dog is called Rex"},
                                      {"role": "assistant", "content": "Rex is a fine name for a dog"}],
                                     filters={"user_id": user}, run_id="run-1", app_id="notes", infer=False)
        out["inferred"] = client.add("I moved to Lisbon last spring", user_id=user, infer=True)
        first = out["text"]["results"][0]["id"]
        out["get"] = eventually(lambda: client.get(first))
        for item in out["messages"]["results"]:
            eventually(lambda: client.get(item["id"]))
        out["bad_add"] = refusal(lambda: client.add("x", user_id="not a valid id"))
        out["bad_add_field"] = refusal(lambda: client.add("x", user_id=user, nonsense=True))
    elif phase == "read":
        out["search"] = client.search("what tea do I like?", filters={"user_id": user}, top_k=3, threshold=0.0,
                                      rerank=True)
        out["search_run"] = client.search("dog", filters={"AND": [{"user_id": user}, {"run_id": "run-1"}]}, top_k=5)
        out["search_metadata"] = client.search("morning", filters={"AND": [{"user_id": user},
                                                                           {"metadata": {"topic": "drinks"}}]})
        out["all"] = client.get_all(filters={"user_id": user})
        out["all_metadata"] = client.get_all(filters={"AND": [{"user_id": user}, {"metadata": {"topic": "drinks"}}]})
        out["page"] = client.get_all(filters={"AND": [{"user_id": user}, {"app_id": "notes"}]}, page=1, page_size=1)
        out["missing"] = refusal(lambda: client.get(str(uuid.uuid4())))
        out["bad_search"] = refusal(lambda: client.search("tea", filters={"user_id": "*"}))
        out["bad_filter"] = refusal(lambda: client.search("tea", filters={"user_id": user, "colour": "red"}))
    elif phase == "change":
        tea, dog, rex = earlier["tea"], earlier["dog"], earlier["rex"]
        out["update"] = client.update(tea, text="I prefer jasmine tea in the morning", metadata={"topic": "tea"})
        out["get"] = eventually(lambda: _changed(client.get(tea), "jasmine"))
        out["history"] = client.history(tea)
        out["batch_update"] = client.batch_update([{"memory_id": dog, "text": "My dog Rex is three years old"}])
        out["batch_delete"] = client.batch_delete([{"memory_id": rex}])
        out["bad_batch"] = refusal(lambda: client.batch_update([{"memory_id": "not-a-uuid", "text": "x"}]))
        out["delete"] = client.delete(tea)
    elif phase == "expiry":  # tests/e2e/test_expiry.py
        added = client.add("My trial plan ends soon", user_id=user, infer=False, expiration_date="2099-01-31")
        memory_id = added["results"][0]["id"]
        out["get"] = eventually(lambda: client.get(memory_id))
        out["update"] = client.update(memory_id, expiration_date=None)
        out["cleared"] = eventually(lambda: _cleared(client.get(memory_id)))
        out["past"] = refusal(lambda: client.add("x", user_id=user, infer=False, expiration_date="2001-01-31"))
    elif phase == "delete_all":
        out["delete_all"] = client.delete_all(user_id=user)
    print(json.dumps(out))


def _cleared(memory):
    if memory.get("expires_at") is not None:
        raise Mem0Error(message="not yet updated", error_code="WAIT")
    return memory


def _changed(memory, word):
    if word not in memory["memory"]:
        raise Mem0Error(message="not yet updated", error_code="WAIT")
    return memory


if __name__ == "__main__":
    main()
