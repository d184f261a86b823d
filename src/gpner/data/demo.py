"""A small generated corpus (Chinese and English, nested entities) and the demo that trains,
evaluates and tags with it: ``gpner demo`` (``make demo``) needs no download.

Organisation names contain locations (``北京大学`` holds ``北京``, ``Bank of London`` holds
``London``), so the corpus is nested. Some names are held out of training so that the test set
measures generalisation, not memory.
"""

from __future__ import annotations

import random
from pathlib import Path

from gpner.records import Entity, Record, Relation

ZH_PER = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周杰", "吴昊", "徐丽",
          "孙强", "马超", "朱琳", "胡军", "郭涛", "何雪", "高峰", "林凡", "罗佳"]
ZH_LOC = ["北京", "上海", "广州", "深圳", "杭州", "南京", "成都", "武汉", "西安", "重庆", "苏州",
          "天津", "长沙", "青岛", "厦门", "大连"]
ZH_ORG_SUFFIX = ["大学", "银行", "科技公司", "人民医院", "图书馆", "电视台", "研究所"]
ZH_TEMPLATES = [
    "{PER}在{ORG}工作。", "{PER}昨天从{LOC}飞往{LOC}。", "{ORG}宣布在{LOC}开设新办公室。",
    "{PER}是{ORG}的研究员，住在{LOC}。", "记者在{LOC}采访了{PER}。",
    "{ORG}和{ORG}签署了合作协议。", "{PER}和{PER}一起去了{LOC}。", "今天{LOC}的天气很好。",
    "据{ORG}消息，{PER}将访问{LOC}。",
]
EN_PER = ["Alice Johnson", "Bob Smith", "Maria Garcia", "David Lee", "Emma Brown", "James Wilson",
          "Olivia Martin", "Lucas Meyer", "Sophie Turner", "Daniel Kim", "Hannah Schmidt",
          "Peter Novak", "Laura Rossi", "Ethan Clark"]
EN_LOC = ["London", "Paris", "Berlin", "Tokyo", "Madrid", "Chicago", "Toronto", "Sydney",
          "Vienna", "Boston", "Dublin", "Oslo", "Lisbon", "Seattle"]
EN_ORG = ["University of {LOC}", "Bank of {LOC}", "{LOC} City Council", "{LOC} General Hospital",
          "{LOC} Institute of Technology", "{LOC} Public Library"]
EN_TEMPLATES = [
    "{PER} works at the {ORG} .", "{PER} flew from {LOC} to {LOC} yesterday .",
    "The {ORG} opened a new office in {LOC} .",
    "{PER} , a researcher at the {ORG} , lives in {LOC} .",
    "Reporters met {PER} in {LOC} .", "The {ORG} and the {ORG} signed an agreement .",
    "{PER} and {PER} visited {LOC} last week .", "The weather in {LOC} was fine today .",
    "According to the {ORG} , {PER} will visit {LOC} .",
]


def _fill(template: str, rng: random.Random, zh: bool, pools: dict) -> Record:
    text, rest = "", template
    entities: list[Entity] = []
    while "{" in rest:
        pre, rest = rest.split("{", 1)
        slot, rest = rest.split("}", 1)
        text += pre
        start = len(text)
        if slot == "PER":
            text += rng.choice(pools["per"])
        elif slot == "LOC":
            text += rng.choice(pools["loc"])
        else:  # ORG, with the location inside it as a nested entity
            loc = rng.choice(pools["loc"])
            if zh:
                text += loc + rng.choice(ZH_ORG_SUFFIX)
                entities.append({"start": start, "end": start + len(loc), "label": "LOC"})
            else:
                form = rng.choice(EN_ORG)
                at = start + form.index("{LOC}")
                text += form.replace("{LOC}", loc)
                entities.append({"start": at, "end": at + len(loc), "label": "LOC"})
        if slot != "ORG":
            entities.append({"start": start, "end": len(text), "label": slot})
        else:
            entities.append({"start": start, "end": len(text), "label": "ORG"})
    text += rest
    entities.sort(key=lambda e: (e["start"], e["end"], e["label"]))
    return {"text": text, "entities": entities}


def generate(n: int, seed: int, held_out: bool = False) -> list[Record]:
    """``n`` records, half Chinese, half English. ``held_out=False`` draws names from the
    training pools only; ``True`` draws a third of them from names never seen in training."""
    rng = random.Random(seed)

    def pools(per, loc):
        k_per, k_loc = int(len(per) * 0.75), int(len(loc) * 0.75)
        seen = {"per": per[:k_per], "loc": loc[:k_loc]}
        return seen, {"per": per, "loc": loc}

    zh_seen, zh_all = pools(ZH_PER, ZH_LOC)
    en_seen, en_all = pools(EN_PER, EN_LOC)
    out = []
    for k in range(n):
        zh = k % 2 == 0
        use_all = held_out and rng.random() < 1 / 3
        pool = (zh_all if use_all else zh_seen) if zh else (en_all if use_all else en_seen)
        out.append(_fill(rng.choice(ZH_TEMPLATES if zh else EN_TEMPLATES), rng, zh, pool))
    return out


def write_corpus(directory: str | Path, n_train: int = 600, n_dev: int = 150, n_test: int = 150,
                 relations: bool = False) -> dict[str, Path]:
    """train/dev/test JSON lines of :func:`generate` (or, with ``relations``,
    :func:`generate_relations`); dev and test hold out names."""
    from gpner.data.formats import write

    make = generate_relations if relations else generate
    directory = Path(directory)
    paths = {}
    for name, n, seed, held in (("train", n_train, 1, False), ("dev", n_dev, 2, True),
                                ("test", n_test, 3, True)):
        paths[name] = directory / f"{name}.jsonl"
        write(make(n, seed, held), paths[name], "jsonl")
    return paths


# relation demo: slots are TYPE:name; each template lists its triples (subject, relation, object);
# an ORG holds a LOC (located_in), and some templates put the object before its subject
REL_TEMPLATES = {
    "zh": [("{PER:a}在{ORG:b}工作。", [("a", "works_for", "b")]),
           ("{PER:a}出生于{LOC:b}，现居{LOC:c}。", [("a", "born_in", "b"), ("a", "lives_in", "c")]),
           ("{LOC:b}是{PER:a}的家乡。", [("a", "born_in", "b")]),
           ("{PER:a}和{PER:c}都在{ORG:b}工作。",
            [("a", "works_for", "b"), ("c", "works_for", "b")]),
           ("{PER:a}昨天从{LOC:b}飞往{LOC:c}。", []),
           ("{PER:a}住在{LOC:b}。", [("a", "lives_in", "b")])],
    "en": [("{PER:a} works at the {ORG:b} .", [("a", "works_for", "b")]),
           ("{PER:a} was born in {LOC:b} and lives in {LOC:c} .",
            [("a", "born_in", "b"), ("a", "lives_in", "c")]),
           ("{LOC:b} is the home town of {PER:a} .", [("a", "born_in", "b")]),
           ("{PER:a} and {PER:c} work at the {ORG:b} .",
            [("a", "works_for", "b"), ("c", "works_for", "b")]),
           ("{PER:a} flew from {LOC:b} to {LOC:c} yesterday .", []),
           ("{PER:a} lives in {LOC:b} .", [("a", "lives_in", "b")])],
}


def _fill_relations(template: str, triples: list, rng: random.Random, zh: bool, pools: dict
                    ) -> Record:
    text, rest = "", template
    entities: list[Entity] = []
    relations: list[Relation] = []
    slot_at: dict[str, int] = {}
    used: set[str] = set()
    while "{" in rest:
        pre, rest = rest.split("{", 1)
        slot, rest = rest.split("}", 1)
        kind, name = slot.split(":")
        text += pre
        start = len(text)
        if kind == "ORG":
            loc = rng.choice(pools["loc"])
            form = "{LOC}" + rng.choice(ZH_ORG_SUFFIX) if zh else rng.choice(EN_ORG)
            at = start + form.index("{LOC}")
            text += form.replace("{LOC}", loc)
            entities.append({"start": at, "end": at + len(loc), "label": "LOC"})
            relations.append({"head": len(entities), "tail": len(entities) - 1,
                              "label": "located_in"})
        else:  # two people of one sentence are two people
            text += rng.choice([x for x in pools["per" if kind == "PER" else "loc"]
                                if x not in used])
            used.add(text[start:])
        slot_at[name] = len(entities)
        entities.append({"start": start, "end": len(text), "label": kind})
    text += rest
    relations += [{"head": slot_at[s], "tail": slot_at[o], "label": r} for s, r, o in triples]
    return {"text": text, "entities": entities, "relations": relations}


def generate_relations(n: int, seed: int, held_out: bool = False) -> list[Record]:
    """``n`` relation records (half Chinese, half English) in gpner's record form, entities
    in text order; names held out as in :func:`generate`."""
    from gpner.records import Report, finish_record

    rng = random.Random(seed)
    out = []
    for k in range(n):
        zh = k % 2 == 0
        per, loc = (ZH_PER, ZH_LOC) if zh else (EN_PER, EN_LOC)
        if not (held_out and rng.random() < 1 / 3):
            per, loc = per[:int(len(per) * 0.75)], loc[:int(len(loc) * 0.75)]
        template, triples = rng.choice(REL_TEMPLATES["zh" if zh else "en"])
        r = _fill_relations(template, triples, rng, zh, {"per": per, "loc": loc})
        out.append(finish_record(r["text"], r["entities"], Report("demo"), None,
                                 relations=r["relations"]))
    return out


RELATION_SAMPLES = [
    "王芳在深圳银行工作。",
    "Emma Brown was born in Paris and lives in Tokyo .",
    "成都是赵磊的家乡。",
]

SAMPLES = [
    "张伟在上海大学工作，昨天从北京飞往深圳。",
    "Alice Johnson works at the University of London and flew to Tokyo .",
    "据杭州人民医院消息，李娜将访问成都。",
    "The Bank of Paris opened a new office in Berlin .",
]
