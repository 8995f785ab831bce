"""Run in .venv-crewai by tests/e2e/test_integrations.py: recallstack as the storage of crewai's
Memory (crewai 1.x's replacement for ExternalMemory), through Memory's own API (scope,
categories and importance given: crewai calls no LLM), then in a Crew whose LLM is scripted.
RECALLSTACK_URL, RECALLSTACK_API_KEY and CHECK_USER_ID come from the test."""

import asyncio
import json
import os
from datetime import datetime, timedelta

from crewai import Agent, Crew, Task
from crewai.llms.base_llm import BaseLLM
from crewai.memory.analyze import _get_prompt
from crewai.memory.storage.backend import StorageBackend
from crewai.memory.unified_memory import Memory

from recallstack import Client
from recallstack.integrations.crewai import RecallstackStorage, recallstack_memory



class ScriptedLLM(BaseLLM):
    """crewai's LLM interface answered from a script, by the prompt crewai sends: no model."""

    prompts: list = []

    def call(self, messages, tools=None, callbacks=None, available_functions=None, from_task=None, from_agent=None,
             response_model=None):
        messages = [{"role": "user", "content": messages}] if isinstance(messages, str) else messages
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        text = "\n".join(str(m["content"]) for m in messages)
        self.prompts.append(text)
        if system == _get_prompt("extract_memories_system"):
            return json.dumps({"memories": ["The on-call rota for the billing team is owned by Eva"]})
        if system == _get_prompt("save_system"):
            return json.dumps({"suggested_scope": "/team", "categories": ["people"], "importance": 0.6})
        if system == _get_prompt("consolidation_system"):
            return json.dumps({"actions": [], "insert_new": True})
        if from_agent is not None:  # the task: answered from the memories in the prompt
            theme = "Alice prefers dark mode" if "Alice prefers dark mode in every editor" in text else "unknown"
            return f"Thought: I now know the final answer\nFinal Answer: {theme}"
        return "nothing is missing"

    def supports_function_calling(self):
        return False


user = os.environ["CHECK_USER_ID"]
client = Client(user_id=user)

memory = recallstack_memory(client)
assert isinstance(memory, Memory) and isinstance(memory._storage, RecallstackStorage)
assert isinstance(memory._storage, StorageBackend)  # crewai's runtime-checkable protocol

theme = memory.remember("Alice prefers dark mode in every editor", scope="/alice/preferences",
                        categories=["preferences"], importance=0.8, metadata={"topic": "ui"})
deploy = memory.remember("The billing service is deployed with make release", scope="/team/ops",
                         categories=["ops"], importance=0.6)
memory.remember_many(["Rosa reviews every database migration", "Eva owns the on-call rota"],
                            scope="/team/people", categories=["people"], importance=0.5)
memory.drain_writes()  # remember_many saves in the background

# Each record is a recallstack memory of the user, with crewai's fields mapped onto its own.
stored = {m.memory: m for m in client.get_all().results}
assert set(stored) == {"Alice prefers dark mode in every editor", "The billing service is deployed with make release",
                       "Rosa reviews every database migration", "Eva owns the on-call rota"}, stored
alice = stored["Alice prefers dark mode in every editor"]
assert alice.categories == ["preferences"] and abs(alice.importance - 0.8) < 1e-6
assert alice.metadata["crewai_scope"] == "/alice/preferences" and alice.metadata["topic"] == "ui"
assert alice.metadata["crewai_id"] == theme.id

# recall (shallow: one search, no LLM) goes through recallstack's hybrid search.
matches = memory.recall("which theme does alice like?", depth="shallow", limit=3)
assert matches and matches[0].record.content == "Alice prefers dark mode in every editor", matches
assert matches[0].record.scope == "/alice/preferences" and matches[0].record.metadata == {"topic": "ui"}
assert matches[0].record.id == theme.id and matches[0].score > 0
in_team = memory.recall("who does what", scope="/team", depth="shallow", limit=10)
assert {m.record.content for m in in_team} <= {"The billing service is deployed with make release",
                                                "Rosa reviews every database migration", "Eva owns the on-call rota"}
assert in_team, "scope /team has three memories"
ops = memory.recall("deploy", categories=["ops"], depth="shallow")
assert [m.record.content for m in ops] == ["The billing service is deployed with make release"]

# Scopes and categories, as crewai's tree and info show them.
assert memory.list_scopes("/") == ["/alice", "/team"]
assert memory.list_scopes("/team") == ["/team/ops", "/team/people"]
info = memory.info("/team")
assert info.record_count == 3 and info.categories == ["ops", "people"]
assert info.child_scopes == ["/team/ops", "/team/people"]
assert memory.list_categories() == {"preferences": 1, "ops": 1, "people": 2}
assert [r.content for r in memory.list_records("/team/people")] and len(memory.list_records()) == 4
assert memory._storage.count("/alice") == 1 and memory._storage.count() == 4

# update and forget by the ids crewai holds.
updated = memory.update(deploy.id, content="The billing service is deployed with make ship")
assert client.get(stored["The billing service is deployed with make release"].id).memory == \
    "The billing service is deployed with make ship"
assert updated.content == "The billing service is deployed with make ship"
assert memory._storage.get_record(deploy.id).content == "The billing service is deployed with make ship"
rosa = next(r for r in memory.list_records("/team/people") if r.content.startswith("Rosa"))
assert memory.forget(record_ids=[rosa.id]) == 1
assert memory.forget(scope="/team", older_than=datetime.utcnow() - timedelta(days=1)) == 0
assert memory._storage.count("/team") == 2
assert asyncio.run(memory._storage.adelete(scope_prefix="/team/people")) == 1
memory.reset("/team")
assert memory._storage.count() == 1 and memory.list_scopes("/") == ["/alice"]

# A memory written elsewhere (the SDK, MCP...) is at crewai's root scope, and recalled too.
client.add("Alice's laptop runs Debian", infer=False)
laptop = memory.recall("what does alice's laptop run?", depth="shallow", limit=2)
assert laptop[0].record.content == "Alice's laptop runs Debian" and laptop[0].record.scope == "/"

# A crew with that memory, its LLM scripted (below): the agent's prompt gets the memories crewai
# recalls from recallstack, and what crewai extracts from the task's result is stored there.
llm = ScriptedLLM(model="scripted")
crew_memory = recallstack_memory(client, llm=llm)
agent = Agent(role="assistant", goal="answer from memory", backstory="remembers", llm=llm)
task = Task(description="Which editor theme does Alice prefer?", expected_output="the theme", agent=agent)
result = Crew(agents=[agent], tasks=[task], memory=crew_memory).kickoff()
assert result.raw == "Alice prefers dark mode", llm.prompts  # the recalled memory was in the agent's prompt
crew_memory.drain_writes()
extracted = client.search("who owns the on-call rota?", limit=1).results[0]
assert extracted.memory == "The on-call rota for the billing team is owned by Eva", extracted
assert extracted.metadata["crewai_scope"] == "/team" and extracted.categories == ["people"]

memory.reset()
assert client.get_all().total == 0
print("crewai: ok")
