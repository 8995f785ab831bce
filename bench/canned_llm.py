"""A canned OpenAI-compatible chat endpoint, so benchmarks can run the LLM code path here
(no model runs on this machine).

    python bench/canned_llm.py [--port 8099]      # serves POST /v1/chat/completions, GET /stats

It stands in for a model, not for our code: the stack's real `openai` client, its retries, the
JSON answers' validation, the reconciliation and every event go through it as with OpenAI,
Ollama or vLLM. What it answers is scripted, told apart by the prompt's first line
(consolidation/prompts):

- extract_facts: the conversation's "[i] role: content" lines parsed back, and the facts the
  offline extractor finds in them (domain/extraction.extract_facts), with their entities,
  relations (the offline graph rules, domain/entities.extract_with_topics), importance and
  categories, in the model's JSON shape. So a run measures the LLM path's plumbing with the
  offline rules' content, not a model's judgement;
- reconcile: NONE for a fact whose best candidate has similarity >= 0.95 (the same thing said
  again), ADD otherwise;
- summarize: the texts joined; profile: empty sections (the offline builder is measured apart).

GET /stats counts the requests by prompt, and the answers it could not script.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domain.entities import extract_with_topics  # noqa: E402
from domain.events import ChatMessage  # noqa: E402
from domain.extraction import extract_facts  # noqa: E402

MODEL = "canned-offline"
SAME_THING = 0.95
_MESSAGE = re.compile(r"^\[(\d+)\] (\w+): (.*)$")
_FACT = re.compile(r"^Fact (\d+): ")
_CANDIDATE = re.compile(r"^- id: (\S+) \| similarity: (-?[\d.]+) \|")


def answer_extraction(user: str) -> dict:
    messages = []
    for line in user.splitlines():
        if match := _MESSAGE.match(line):
            messages.append(ChatMessage(role=match[2], content=match[3]))
        elif messages and line and not line.startswith("Extract the facts"):
            last = messages[-1]  # a message's own line breaks
            messages[-1] = ChatMessage(role=last.role, content=f"{last.content}\n{line}")
    facts = []
    for fact in extract_facts(messages):
        entities, relations = extract_with_topics(fact.text)
        facts.append({"text": fact.text, "message_indexes": list(fact.message_indexes),
                      "entities": [{"name": e.name, "type": e.type} for e in entities],
                      "relations": [{"source": r.source, "type": r.type, "target": r.target} for r in relations],
                      "importance": fact.importance, "categories": list(fact.categories)})
    return {"facts": facts}


def answer_reconcile(user: str) -> dict:
    decisions, fact, best = [], None, None

    def close() -> None:
        if fact is None:
            return
        if best is not None and best[1] >= SAME_THING:
            decisions.append({"fact_index": fact, "action": "NONE", "memory_id": best[0], "text": None,
                              "reason": f"a memory says the same (similarity {best[1]:.2f})"})
        else:
            decisions.append({"fact_index": fact, "action": "ADD", "memory_id": None, "text": None,
                              "reason": "new"})

    for line in user.splitlines():
        if match := _FACT.match(line):
            close()
            fact, best = int(match[1]), None
        elif (match := _CANDIDATE.match(line)) and (best is None or float(match[2]) > best[1]):
            best = (match[1], float(match[2]))
    close()
    return {"decisions": decisions}


def answer_summary(user: str) -> dict:
    lines = [line.strip() for line in user.splitlines()[1:] if line.strip() and not line.startswith("Write the one")]
    return {"summary": " ".join(lines)[:1000] or "Nothing to summarize."}


def answer_profile(user: str) -> dict:
    return {s: [] for s in ("preferences", "facts", "projects", "tools", "people", "instructions")}


PROMPTS = {"extract_facts": ("You extract long-term memories", answer_extraction),
           "reconcile": ("You keep a user's long-term memory consistent", answer_reconcile),
           "summarize": ("You merge related long-term memories", answer_summary),
           "profile": ("You write a short structured profile", answer_profile)}


def prompt_of(system: str) -> str:
    for name, (opening, _answer) in PROMPTS.items():
        if system.startswith(opening):
            return name
    return "unknown"


class CannedServer:
    def __init__(self, port: int = 0) -> None:
        self.stats: Counter = Counter()
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                if self.path == "/stats":
                    return self._send(200, dict(canned.stats))
                self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                messages = body.get("messages", [])
                system = next((m["content"] for m in messages if m.get("role") == "system"), "")
                user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
                name = prompt_of(system)
                canned.stats[name] += 1
                if name == "unknown":
                    return self._send(400, {"error": {"message": "the canned model knows no such prompt",
                                                      "type": "invalid_request_error"}})
                content = json.dumps(PROMPTS[name][1](user))
                self._send(200, {
                    "id": f"chatcmpl-{sum(canned.stats.values())}", "object": "chat.completion",
                    "created": int(time.time()), "model": body.get("model", MODEL),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": len(user) // 4, "completion_tokens": len(content) // 4,
                              "total_tokens": (len(user) + len(content)) // 4}})

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]

    def start(self) -> "CannedServer":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8099)
    args = ap.parse_args()
    server = CannedServer(args.port)
    print(f"canned LLM at http://127.0.0.1:{server.port}/v1 (model {MODEL})", flush=True)
    try:
        server.server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
