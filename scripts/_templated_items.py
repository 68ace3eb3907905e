"""Templated items in each dataset's own format, with rules a tiny model can learn.

The embedded fixtures and the tiny family's training data are both drawn from these templates, with
different seeds; `scripts/train_tiny.py` drops every training item equal to a fixture item (same
question, options and answer), so the two never share an item. Each dataset mixes easy kinds (find the option in a named
category, copy the object the context names) with harder ones (single-digit arithmetic, "which is not
a ...", two-operator boolean expressions), so a deeper branch has something to be better at.

Every generator returns rows in the tuple layout that `scripts/make_fixtures.py`'s writers turn into
OpenCompass's on-disk formats (an MMLU row is its CSV row, a GSM8K row its question and worked answer).
"""

from __future__ import annotations

import random

LETTERS = "ABCDEFGHIJ"

CATEGORIES: dict[str, tuple[str, ...]] = {
    "planet": ("Mercury", "Venus", "Mars", "Jupiter", "Saturn", "Neptune", "Uranus"),
    "continent": ("Asia", "Africa", "Europe", "Australia", "Antarctica"),
    "colour": ("red", "blue", "green", "yellow", "purple", "orange"),
    "animal": ("dog", "cat", "horse", "sheep", "lion", "tiger", "rabbit"),
    "fruit": ("apple", "banana", "cherry", "grape", "lemon", "mango"),
    "tool": ("hammer", "saw", "drill", "wrench", "shovel", "chisel"),
    "metal": ("iron", "copper", "gold", "silver", "zinc", "tin"),
}
ZH_CATEGORIES: dict[str, tuple[str, ...]] = {
    "水果": ("苹果", "香蕉", "葡萄", "西瓜", "桃子"),
    "动物": ("老虎", "熊猫", "兔子", "骆驼", "狮子"),
    "颜色": ("红色", "蓝色", "绿色", "黄色", "紫色"),
    "城市": ("北京", "上海", "广州", "南京", "西安"),
    "河流": ("长江", "黄河", "珠江", "淮河", "汉江"),
}
NAMES = ("Tom", "Ana", "Raj", "Mei", "Sam", "Lena", "Omar", "Ivy", "Ben", "Zoe")
THINGS = ("apples", "pencils", "stickers", "marbles", "books", "cards", "shells", "coins")


def article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def category_choice(rng: random.Random, n_options: int, cats: tuple[str, ...] | None = None, negate: bool = False):
    """(category, options, gold index): one option in the category and the rest outside it (or the reverse)."""
    cat = rng.choice(cats or tuple(CATEGORIES))
    others = [w for c, words in CATEGORIES.items() if c != cat for w in words]
    inside = list(CATEGORIES[cat])
    if negate:  # one outsider among members of the category
        options = rng.sample(inside, min(n_options - 1, len(inside))) + [rng.choice(others)]
    else:
        options = [rng.choice(inside)] + rng.sample(others, n_options - 1)
    odd = options[-1] if negate else options[0]
    rng.shuffle(options)
    return cat, options, options.index(odd)


def arithmetic(rng: random.Random) -> tuple[str, int]:
    """('3 + 4', 7) with single-digit operands and a result from 0 to 18."""
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    if rng.random() < 0.5:
        return f"{a} + {b}", a + b
    a, b = max(a, b), min(a, b)
    return f"{a} - {b}", a - b


def two_steps(rng: random.Random) -> tuple[str, int]:
    """('3 + 4 - 2', 5): single-digit operands, two operations, a result from 0 to 17."""
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    c = rng.randint(1, a + b)
    return f"{a} + {b} - {c}", a + b - c


def number_options(rng: random.Random, right: int, n_options: int) -> tuple[list[str], int]:
    pool = [v for v in range(0, 19) if v != right]
    options = [right] + rng.sample(pool, n_options - 1)
    rng.shuffle(options)
    return [str(v) for v in options], options.index(right)


def english_choice(rng: random.Random, n_options: int, cats: tuple[str, ...] | None = None):
    """(question, options, gold index): a category question, its negation, or an arithmetic question."""
    kind = rng.random()
    if kind < 0.4:
        cat, options, gold = category_choice(rng, n_options, cats)
        return f"Which of the following is {article(cat)} {cat}?", options, gold
    if kind < 0.7 and n_options <= 5:
        cat, options, gold = category_choice(rng, n_options, cats, negate=True)
        return f"Which of the following is not {article(cat)} {cat}?", options, gold
    expr, value = arithmetic(rng)
    options, gold = number_options(rng, value, n_options)
    return f"What is {expr}?", options, gold


def mmlu(rng: random.Random, n: int) -> list[tuple]:
    """MMLU rows: (question, A, B, C, D, answer letter)."""
    out = []
    for _ in range(n):
        q, options, gold = english_choice(rng, 4)
        out.append((q, *options, LETTERS[gold]))
    return out


def mmlu_pro(rng: random.Random, n: int, cats: tuple[str, ...] | None = None, arithmetic_only: bool = False):
    """MMLU-Pro rows: (question, six options, answer letter, cot_content)."""
    out = []
    for _ in range(n):
        if arithmetic_only:
            expr, value = arithmetic(rng)
            options, gold = number_options(rng, value, 6)
            q = f"What is {expr}?"
        else:
            q, options, gold = english_choice(rng, 6, cats)
        out.append((q, options, LETTERS[gold], ""))
    return out


def cmmlu(rng: random.Random, n: int, maths: bool) -> list[tuple]:
    """CMMLU rows: (question, A, B, C, D, answer letter), category questions in Chinese or arithmetic."""
    out = []
    for _ in range(n):
        if maths:
            a, b = rng.randint(1, 9), rng.randint(1, 9)
            options, gold = number_options(rng, a + b, 4)
            q = f"{a}加{b}等于多少？"
        else:
            cat = rng.choice(tuple(ZH_CATEGORIES))
            others = [w for c, ws in ZH_CATEGORIES.items() if c != cat for w in ws]
            options = [rng.choice(ZH_CATEGORIES[cat])] + rng.sample(others, 3)
            right = options[0]
            rng.shuffle(options)
            gold = options.index(right)
            q = f"下列哪一项是{cat}？"
        out.append((q, *options, LETTERS[gold]))
    return out


def boolean_expression(rng: random.Random) -> tuple[str, str]:
    """BBH boolean_expressions: ('not True and False is', 'False'), one or two operators."""
    a, b = rng.choice(["True", "False"]), rng.choice(["True", "False"])
    form = rng.randrange(4)
    if form == 0:
        text, value = f"not {a}", a != "True"
    elif form in (1, 2):
        op = "and" if form == 1 else "or"
        text = f"{a} {op} {b}"
        value = (a == "True" and b == "True") if op == "and" else (a == "True" or b == "True")
    else:
        op = rng.choice(["and", "or"])
        text = f"not ( {a} {op} {b} )"
        inner = (a == "True" and b == "True") if op == "and" else (a == "True" or b == "True")
        value = not inner
    return f"{text} is", str(value)


def date_question(rng: random.Random) -> tuple[str, str]:
    """BBH date_understanding: tomorrow or yesterday within one month, four options."""
    month, day, year = rng.randint(1, 12), rng.randint(2, 27), rng.randint(2001, 2029)
    forward = rng.random() < 0.5
    right = day + 1 if forward else day - 1
    wrong = [day - 1 if forward else day + 1, right + 7 if right + 7 <= 28 else right - 7]
    fmt = [f"{month:02d}/{d:02d}/{year}" for d in [right, *wrong]]
    fmt.append(f"{month:02d}/{right:02d}/{year + 1}")
    answer = fmt[0]
    rng.shuffle(fmt)
    when = "tomorrow" if forward else "yesterday"
    options = "\n".join(f"({LETTERS[i]}) {d}" for i, d in enumerate(fmt))
    text = f"Today is {month:02d}/{day:02d}/{year}. What is the date {when} in MM/DD/YYYY?\nOptions:\n{options}"
    return text, f"({LETTERS[fmt.index(answer)]})"


def arc_c(rng: random.Random, n: int) -> list[tuple]:
    """ARC-c rows: (stem, choice texts, labels, answer key)."""
    out = []
    for _ in range(n):
        q, options, gold = english_choice(rng, 4)
        out.append((q, options, "ABCD", "ABCD"[gold]))
    return out


def hellaswag(rng: random.Random, n: int) -> list[tuple]:
    """HellaSwag rows: (activity, context, endings, gold index); the right ending names the context's object."""
    out = []
    objects = [w for cat in ("fruit", "tool", "animal") for w in CATEGORIES[cat]]
    verbs = ("puts the {} on the table.", "gives the {} to a friend.", "looks at the {} for a while.")
    for _ in range(n):
        name = rng.choice(NAMES)
        obj, *others = rng.sample(objects, 4)
        verb = rng.choice(verbs)
        endings = [verb.format(o) for o in [obj, *others]]
        rng.shuffle(endings)
        ctx = f"{name} picks up the {obj}. Then {name}"
        out.append(("Picking things up", ctx, endings, endings.index(verb.format(obj))))
    return out


def winogrande(rng: random.Random, n: int) -> list[tuple]:
    """WinoGrande rows: (sentence with one '_', option1, option2, '1' or '2')."""
    out = []
    for _ in range(n):
        cat, other = rng.sample(tuple(CATEGORIES), 2)
        right, wrong = rng.choice(CATEGORIES[cat]), rng.choice(CATEGORIES[other])
        pair = [right, wrong]
        rng.shuffle(pair)
        sentence = f"I kept the {pair[0]} and not the {pair[1]}, because the _ is {article(cat)} {cat}."
        out.append((sentence, pair[0], pair[1], str(pair.index(right) + 1)))
    return out


def gpqa(rng: random.Random, n: int) -> list[tuple]:
    """GPQA rows: (question, correct answer, three incorrect answers); the loader shuffles them."""
    out = []
    for _ in range(n):
        q, options, gold = english_choice(rng, 4, cats=("metal", "planet", "animal", "colour"))
        out.append((q, options[gold], *[o for i, o in enumerate(options) if i != gold]))
    return out


def math_problem(rng: random.Random, n: int) -> list[tuple]:
    """MATH rows: (problem, level, type, solution ending in a boxed answer)."""
    out = []
    for _ in range(n):
        expr, value = arithmetic(rng) if rng.random() < 0.5 else two_steps(rng)
        problem = rng.choice(["What is ${}$?", "Compute ${}$.", "Evaluate ${}$."]).format(expr)
        out.append((problem, "Level 1", "Prealgebra", f"${expr} = \\boxed{{{value}}}$."))
    return out


def gsm8k(rng: random.Random, n: int) -> list[tuple]:
    """GSM8K rows: (question, worked answer ending in '#### N'), word problems in one or two steps."""
    out = []
    for _ in range(n):
        name, thing = rng.choice(NAMES), rng.choice(THINGS)
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        kind = rng.random()
        if kind < 0.5:  # two steps: harder, so that depth has something to add
            c = rng.randint(1, a + b)
            q = f"{name} has {a} {thing}, gets {b} more and gives away {c}. How many {thing} does {name} have now?"
            value = a + b - c
            step = f"{a} + {b} - {c} = <<{a}+{b}-{c}={value}>>{value}"
        elif kind < 0.75:
            q = f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?"
            value, step = a + b, f"{a} + {b} = <<{a}+{b}={a + b}>>{a + b}"
        else:
            a, b = max(a, b), min(a, b)
            q = f"{name} has {a} {thing} and gives away {b}. How many {thing} does {name} have now?"
            value, step = a - b, f"{a} - {b} = <<{a}-{b}={a - b}>>{a - b}"
        out.append((q, f"{name} has {step} {thing}.\n#### {value}"))
    return out


def items(seed: int, scale: int = 1) -> dict[str, object]:
    """Every templated dataset, in the layouts make_fixtures.py writes; `scale` multiplies the item counts.

    At scale 1: 3 test items (and 1 dev or validation item) per group, 5 items per ungrouped dataset,
    2 GSM8K train items. The fixtures use scale 5 (make_fixtures.FIXTURE_SCALE).
    """
    rng = random.Random(seed)
    t, d, five = 3 * scale, 1 * scale, 5 * scale
    bbh_dates = [date_question(rng) for _ in range(t)]
    bbh_bools = [boolean_expression(rng) for _ in range(t)]
    return {
        "MMLU": {
            "astronomy": {"dev": mmlu(rng, d), "test": mmlu(rng, t)},
            "high_school_geography": {"dev": mmlu(rng, d), "test": mmlu(rng, t)},
        },
        "CMMLU": {
            "high_school_geography": {"dev": cmmlu(rng, d, False), "test": cmmlu(rng, t, False)},
            "elementary_mathematics": {"dev": cmmlu(rng, d, True), "test": cmmlu(rng, t, True)},
        },
        "MMLU_PRO": {
            "math": {
                "validation": mmlu_pro(rng, d, arithmetic_only=True),
                "test": mmlu_pro(rng, t, arithmetic_only=True),
            },
            "biology": {
                "validation": mmlu_pro(rng, d, cats=("animal", "fruit")),
                "test": mmlu_pro(rng, t, cats=("animal", "fruit")),
            },
        },
        "BBH": {"date_understanding": bbh_dates, "boolean_expressions": bbh_bools},
        "ARC_C": arc_c(rng, five),
        "HELLASWAG": hellaswag(rng, five),
        "WINOGRANDE": winogrande(rng, five),
        "GPQA": gpqa(rng, five),
        "MATH": math_problem(rng, five),
        "GSM8K_TEST": gsm8k(rng, five),
        "GSM8K_TRAIN": gsm8k(rng, 2 * scale),
    }


def drills(rng: random.Random, n: int) -> list[str]:
    """Short dense practice texts: every few tokens is an answer (which option holds a category, a sum,
    a truth value), so a tiny model learns the skills the templated questions need in fewer steps."""
    out = []
    for _ in range(n):
        kind = rng.randrange(7)
        if kind == 6:  # options, then which letter holds each of them, twice over: the lookup itself
            pool = [str(v) for v in range(19)] if rng.random() < 0.3 else [w for ws in CATEGORIES.values() for w in ws]
            words = rng.sample(pool, rng.choice((4, 6)))
            sep = rng.choice((") ", ". "))
            lines = [f"{LETTERS[i]}{sep}{w}" for i, w in enumerate(words)]
            asks = [i for _ in range(2) for i in rng.sample(range(len(words)), len(words))]
            out.append("\n".join(lines) + "\n" + " ".join(f"{words[i]}: {LETTERS[i]}." for i in asks))
        elif kind == 5:  # which category each word is in, the facts every choice question rests on
            facts = [(w, c) for c in rng.sample(tuple(CATEGORIES), 4) for w in rng.sample(CATEGORIES[c], 2)]
            zh = [(w, c) for c in rng.sample(tuple(ZH_CATEGORIES), 2) for w in rng.sample(ZH_CATEGORIES[c], 2)]
            rng.shuffle(facts)
            text = " ".join(f"{w} is {article(c)} {c}." for w, c in facts)
            out.append(text + " " + "".join(f"{w}是{c}。" for w, c in zh))
        elif kind < 2:  # options, then which letter holds each category, in the formats the datasets use
            cats = rng.sample(tuple(CATEGORIES), 4)
            words = [rng.choice(CATEGORIES[c]) for c in cats]
            sep = ") " if kind == 0 else ". "
            lines = [f"{LETTERS[i]}{sep}{w}" for i, w in enumerate(words)]
            order = rng.sample(range(4), 4)
            facts = " ".join(f"The {cats[i]} is {LETTERS[i]}." for i in order)
            out.append("\n".join(lines) + "\n" + facts)
        elif kind == 2:  # the same in Chinese
            cats = rng.sample(tuple(ZH_CATEGORIES), 4)
            words = [rng.choice(ZH_CATEGORIES[c]) for c in cats]
            lines = [f"{LETTERS[i]}) {w}" for i, w in enumerate(words)]
            order = rng.sample(range(4), 4)
            out.append("\n".join(lines) + "\n" + "".join(f"{cats[i]}是{LETTERS[i]}。" for i in order))
        elif kind == 3:
            out.append("\n".join(f"{e} = {v}" for e, v in (arithmetic(rng) for _ in range(8))))
        else:
            out.append(" ".join(f"{t} {v}." for t, v in (boolean_expression(rng) for _ in range(6))))
    return out
