"""Synthetic queries with known intention tags: a stand-in teacher for tests and benchmarks.

Each query is built from one task (its phrasing filled from slots, some slot values
carrying a tag of their own, e.g. the programming language) and up to
``max_modifiers`` modifiers ("Keep it under 50 words." -> Length Constraint). The
"teacher" then writes every tag as its canonical name or, at ``variant_rate``, as one
of its paraphrases ("Code Generation" / "Code Writing"), the way an LLM teacher
names one intention in several ways, and drops a tag at ``drop_rate``. The canonical
tags are kept as the truth.

``make_tagged_queries(...).to_dataset()`` looks like ``Tagger`` output (a ``query``
column and every ``instag_*`` column), so the whole pipeline runs on it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from instag_hf import schema

# slot name -> (text, tag or None)
SLOTS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "lang": (("Python", "Python"), ("JavaScript", "JavaScript"), ("Java", "Java"), ("C++", "C++"),
             ("Rust", "Rust"), ("Go", "Go")),
    "code_task": (("reverses a linked list", "Data Structures"), ("parses a CSV file", "File Handling"),
                  ("checks whether a number is prime", "Algorithm Design"), ("merges two sorted arrays", "Algorithm Design"),
                  ("counts word frequencies in a text", "String Manipulation"),
                  ("validates an email address", "Regular Expressions"), ("reads a JSON config file", "File Handling"),
                  ("removes duplicates from a list", "Data Structures"), ("sorts users by age", "Sorting"),
                  ("finds the longest palindrome in a string", "String Manipulation")),
    "bug": (("crashes with an index out of range error", "Error Handling"), ("runs forever", "Infinite Loop"),
            ("returns None instead of a number", None), ("is too slow on large inputs", "Performance Optimization"),
            ("prints the wrong total", None)),
    "subject": (("a lonely robot", "Science Fiction"), ("a dragon who is afraid of fire", "Fantasy"),
                ("two friends lost at sea", "Adventure"), ("a haunted lighthouse", "Horror"),
                ("the first day of spring", "Nature"), ("a detective in Paris", "Mystery"),
                ("a cat who wants to be a chef", None), ("the moon landing", "History")),
    "recipient": (("landlord", "Housing"), ("manager", "Workplace Communication"), ("professor", "Education"),
                  ("customer", "Customer Service"), ("neighbor", None)),
    "request": (("to fix a leaking faucet", None), ("for a deadline extension", None), ("for a refund", None),
                ("to reschedule our meeting", "Scheduling"), ("for a letter of recommendation", None)),
    "language": (("French", "French"), ("Spanish", "Spanish"), ("German", "German"), ("Japanese", "Japanese"),
                 ("Italian", "Italian")),
    "sentence": (("Where is the train station?", None), ("I would like a cup of coffee, please.", None),
                 ("The meeting has been moved to Friday.", None), ("Happy birthday, my friend!", None),
                 ("How much does this cost?", None)),
    "doc": (("a news article about rising housing prices", "Economics"),
            ("a research abstract on sleep and memory", "Neuroscience"),
            ("a blog post about remote work", "Workplace"), ("a report on ocean plastic pollution", "Environment"),
            ("meeting notes from a product review", "Business")),
    "bad_sentence": (("She don't like apples.", None), ("Their going to the park tomorow.", None),
                     ("Me and him was late.", None), ("The datas shows a clear trend.", None)),
    "thing": (("books", "Books"), ("movies", "Movies"), ("podcasts", "Podcasts"), ("board games", "Games"),
              ("albums", "Music")),
    "audience": (("a teenager", None), ("a history buff", "History"), ("someone learning to code", "Programming"),
                 ("a long flight", "Travel"), ("a rainy weekend", None)),
    "city": (("Tokyo", "Japan"), ("Rome", "Italy"), ("Lisbon", "Portugal"), ("New York", "United States"),
             ("Cape Town", "South Africa")),
    "days": (("three", None), ("five", None), ("seven", None)),
    "dish": (("vegan lasagna", "Vegan Cooking"), ("sourdough bread", "Baking"), ("chicken curry", "Indian Cuisine"),
             ("chocolate chip cookies", "Baking"), ("a gluten-free pizza", "Dietary Restriction"),
             ("pad thai", "Thai Cuisine")),
    "symptom": (("frequent headaches", "Headache"), ("lower back pain", "Back Pain"), ("trouble sleeping", "Sleep"),
                ("a sore throat", None), ("seasonal allergies", "Allergies")),
    "fitness_goal": (("build muscle", "Strength Training"), ("run a 10K", "Running"), ("lose weight", "Weight Loss"),
                     ("improve flexibility", "Stretching")),
    "job": (("nurse", "Healthcare"), ("software engineer", "Software Engineering"), ("teacher", "Education"),
            ("data analyst", "Data Science"), ("accountant", "Finance")),
    "concept": (("quantum entanglement", "Physics"), ("photosynthesis", "Biology"), ("inflation", "Economics"),
                ("recursion", "Computer Science"), ("the French Revolution", "History"),
                ("black holes", "Astronomy"), ("supply and demand", "Economics"), ("natural selection", "Biology"),
                ("machine learning", "Machine Learning"), ("compound interest", "Finance")),
    "pair": (("a Roth IRA and a traditional IRA", "Finance"), ("TCP and UDP", "Computer Networking"),
             ("mitosis and meiosis", "Biology"), ("Python lists and tuples", "Python"),
             ("renting and buying a home", "Housing"), ("baroque and classical music", "Music")),
    "character": (("Sherlock Holmes", None), ("a medieval knight", "History"), ("a pirate captain", None),
                  ("Shakespeare", "Literature"), ("a tour guide on Mars", "Science Fiction")),
    "roleplay_task": (("describe your morning", None), ("give me advice on my love life", "Relationship Advice"),
                      ("introduce yourself to a new friend", None), ("explain how you solve problems", None)),
    "numbers": (("120, 135, 128, 160, 171, 190", None), ("45, 40, 38, 52, 61, 58", None),
                ("300, 280, 310, 305, 330, 360", None)),
    "sql_task": (("finds the ten customers with the most orders", "Aggregation"),
                 ("joins the orders and customers tables", "Table Joins"),
                 ("deletes rows older than a year", "Data Cleaning"),
                 ("computes the average salary per department", "Aggregation")),
    "idea_topic": (("a birthday party for a six-year-old", "Event Planning"),
                   ("a small online business", "Entrepreneurship"), ("a science fair project", "Education"),
                   ("team-building activities", "Workplace"), ("a YouTube channel", "Content Creation")),
    "review": (("The battery died after two days, very disappointed.", "Product Review"),
               ("Best pizza in town, friendly staff!", "Restaurant Review"),
               ("The plot dragged but the acting was superb.", "Movie Review")),
    "word": (("serendipity", None), ("ubiquitous", None), ("ephemeral", None), ("quixotic", None),
             ("petrichor", None)),
    "event": (("the fall of the Berlin Wall", "History"), ("the signing of the Magna Carta", "History"),
              ("the first moon landing", "Space Exploration"), ("the invention of the printing press", "History")),
    "product": (("noise-cancelling headphones", "Electronics"), ("a bamboo cutting board", "Kitchenware"),
                ("an ergonomic office chair", "Furniture"), ("a reusable water bottle", "Sustainability")),
    "finance_task": (("pay off my student loans faster", "Debt Management"), ("start investing with $500", "Investing"),
                     ("build an emergency fund", "Saving"), ("budget on a monthly salary of $3,000", "Budgeting")),
    "n": (("50", None), ("100", None), ("three", None), ("150", None)),
    "a": (("120", None), ("45", None), ("360", None), ("18", None)),
    "b": (("1.5", None), ("3", None), ("4", None), ("2.5", None)),
    "p": (("15", None), ("20", None), ("35", None)),
}

# (canonical tag, paraphrases, phrasings with {slots})
TASKS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Code Generation", ("Code Writing", "Writing Code"),
     ("Write a {lang} function that {code_task}.", "I need {lang} code that {code_task}.",
      "Can you implement a {lang} program that {code_task}?")),
    ("Code Debugging", ("Bug Fixing", "Debugging Code"),
     ("My {lang} script {bug}. How do I fix it?", "Help me debug this {lang} code: it {bug}.",
      "Why does my {lang} program {bug}?")),
    ("Math Problem Solving", ("Math Word Problem", "Solving Math Problems"),
     ("A train travels {a} km in {b} hours. What is its average speed?",
      "A jacket costs ${a} and is on sale for {p}% off. What is the final price?",
      "If {b} workers finish a job in {a} hours, how long would one worker take?")),
    ("Creative Writing", ("Story Writing", "Fiction Writing"),
     ("Write a short story about {subject}.", "Tell me a bedtime story about {subject}.",
      "Draft the opening paragraph of a novel about {subject}.")),
    ("Poetry Writing", ("Poem Generation", "Writing Poems"),
     ("Write a poem about {subject}.", "Compose a sonnet about {subject}.", "Give me a haiku about {subject}.")),
    ("Email Writing", ("Email Composition", "Writing an Email"),
     ("Write an email to my {recipient} asking {request}.", "Draft a polite email to my {recipient} {request}.",
      "Help me write a message to my {recipient} asking {request}.")),
    ("Translation", ("Language Translation", "Translating Text"),
     ("Translate '{sentence}' into {language}.", "How do you say '{sentence}' in {language}?",
      "Please translate this into {language}: {sentence}")),
    ("Text Summarization", ("Summarization", "Summarizing Text"),
     ("Summarize {doc} for me.", "Give me the key points of {doc}.", "Write a summary of {doc}.")),
    ("Grammar Correction", ("Spelling and Grammar Check", "Proofreading"),
     ("Fix the grammar in this sentence: '{bad_sentence}'", "Proofread this: {bad_sentence}",
      "Is this sentence correct? '{bad_sentence}'")),
    ("Recommendation", ("Recommendation Request", "Suggestions"),
     ("Can you recommend some {thing} for {audience}?", "What {thing} would you suggest for {audience}?",
      "List a few {thing} that are good for {audience}.")),
    ("Travel Planning", ("Trip Planning", "Itinerary Planning"),
     ("Plan a {days}-day trip to {city}.", "What should I see in {city} if I only have {days} days?",
      "Make me an itinerary for {days} days in {city}.")),
    ("Recipe Request", ("Cooking Instructions", "Asking for a Recipe"),
     ("How do I make {dish}?", "Give me a recipe for {dish}.", "What do I need to cook {dish} at home?")),
    ("Health Advice", ("Medical Advice", "Health Information"),
     ("What are common causes of {symptom}?", "How can I relieve {symptom} at home?",
      "When should I see a doctor about {symptom}?")),
    ("Fitness Planning", ("Workout Planning", "Exercise Advice"),
     ("Create a workout plan to help me {fitness_goal}.", "How should I train to {fitness_goal}?",
      "Design a weekly exercise routine to {fitness_goal}.")),
    ("Career Advice", ("Career Guidance", "Job Advice"),
     ("How should I prepare for a job interview as a {job}?", "What skills do I need to become a {job}?",
      "Is it a good idea to change careers and become a {job}?")),
    ("Concept Explanation", ("Explaining a Concept", "Knowledge Explanation"),
     ("Explain {concept} in simple terms.", "What is {concept} and why does it matter?",
      "Can you help me understand {concept}?")),
    ("Comparison", ("Compare and Contrast", "Comparing Options"),
     ("What are the differences between {pair}?", "Compare {pair}.", "Which is better for me: {pair}?")),
    ("Role Play", ("Cosplay", "Character Role Play"),
     ("Pretend you are {character} and {roleplay_task}.", "Act as {character} and {roleplay_task}.",
      "You are {character}. Please {roleplay_task}.")),
    ("Data Analysis", ("Analyzing Data", "Data Interpretation"),
     ("Here are monthly sales figures: {numbers}. What trends do you see?",
      "Analyze these numbers and tell me what stands out: {numbers}.",
      "What does this data series suggest: {numbers}?")),
    ("SQL Query Writing", ("Database Query", "Writing SQL"),
     ("Write an SQL query that {sql_task}.", "How would I write SQL that {sql_task}?",
      "Give me a PostgreSQL query that {sql_task}.")),
    ("Brainstorming", ("Idea Generation", "Generating Ideas"),
     ("Give me ideas for {idea_topic}.", "Brainstorm some options for {idea_topic}.",
      "I need creative ideas for {idea_topic}.")),
    ("Sentiment Analysis", ("Sentiment Classification", "Opinion Analysis"),
     ("Is this review positive or negative? '{review}'", "What is the sentiment of this text: {review}",
      "Classify the tone of this review: {review}")),
    ("Word Definition", ("Vocabulary Question", "Meaning of a Word"),
     ("What does the word '{word}' mean?", "Define '{word}' and use it in a sentence.",
      "What is the meaning of {word}?")),
    ("Joke Telling", ("Telling Jokes", "Humor Request"),
     ("Tell me a joke about {subject}.", "Make me laugh with a joke about {subject}.",
      "Do you know any funny jokes about {subject}?")),
    ("Historical Question", ("History Question", "Historical Facts"),
     ("When did {event} happen and why was it important?", "What caused {event}?",
      "Tell me about {event}.")),
    ("Product Description", ("Marketing Copy", "Describing a Product"),
     ("Write a product description for {product}.", "Create an online store listing for {product}.",
      "Write catchy marketing text for {product}.")),
    ("Financial Advice", ("Personal Finance", "Money Management"),
     ("How should I {finance_task}?", "What is the best way to {finance_task}?",
      "Give me a plan to {finance_task}.")),
)

MODIFIERS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Length Constraint", ("Word Limit", "Response Length Limit"),
     ("Keep it under {n} words.", "Answer in no more than {n} sentences.", "Keep the answer short.")),
    ("Step-by-Step Explanation", ("Step by Step Guide", "Detailed Steps"),
     ("Explain step by step.", "Walk me through it step by step.", "Show each step of your reasoning.")),
    ("List Format", ("Bullet Points", "Bulleted List"),
     ("Format the answer as a bulleted list.", "Use bullet points.", "Put the answer in a numbered list.")),
    ("Formal Tone", ("Professional Tone", "Formal Language"),
     ("Use a formal tone.", "Keep the tone professional.", "Write it in formal language.")),
    ("Simple Language", ("Explain Like I'm Five", "Child-Friendly Explanation"),
     ("Explain it so a ten-year-old can understand.", "Use very simple words.", "Make it easy for a child to follow.")),
    ("Example Request", ("Providing Examples", "Illustrative Examples"),
     ("Include an example.", "Give me two concrete examples.", "Show an example to illustrate.")),
    ("Table Format", ("Tabular Output", "Table Output"),
     ("Present the result in a table.", "Put it in a table with columns.", "Use a Markdown table.")),
    ("Humorous Tone", ("Funny Style", "Lighthearted Tone"),
     ("Make it funny.", "Add some humor.", "Keep it lighthearted and playful.")),
)

_OPENERS = ("", "", "", "Please help: ", "Hi! ", "Quick question. ", "Hey, ")


@dataclass
class TaggedQueries:
    """Queries, the teacher's tags (``{"tag", "explanation"}`` items) and the canonical truth."""

    queries: list[str]
    teacher: list[list[dict]]
    truth: list[list[str]]
    params: dict

    def __len__(self) -> int:
        return len(self.queries)

    def to_dataset(self):
        """A ``Dataset`` shaped like Tagger output: ``id``, ``query``, ``instag_*`` columns and ``truth_tags``."""
        from datasets import Dataset, Features, List, Value

        features = Features({"id": Value("int64"), "query": Value("string"), **schema.TAG_FEATURES,
                             "truth_tags": List(Value("string"))})
        return Dataset.from_dict({
            "id": list(range(len(self.queries))),
            "query": self.queries,
            schema.TAGS: self.teacher,
            schema.STATUS: [schema.OK] * len(self.queries),
            schema.ERROR: [""] * len(self.queries),
            schema.TURN_TAGS: [[t] for t in self.teacher],
            schema.TURN_STATUS: [[schema.OK]] * len(self.queries),
            "truth_tags": self.truth,
        }, features=features)


def _fill(text: str, rng: np.random.Generator, tags: list[str]) -> str:
    out = text
    while "{" in out:
        start = out.index("{")
        end = out.index("}", start)
        slot = out[start + 1:end]
        options = SLOTS[slot]
        value, tag = options[int(rng.integers(len(options)))]
        if tag is not None:
            tags.append(tag)
        out = out[:start] + value + out[end + 1:]
    return out


def all_tags() -> list[str]:
    """Every canonical tag the generator can emit."""
    found = [t for t, _, _ in TASKS] + [t for t, _, _ in MODIFIERS]
    found += [tag for options in SLOTS.values() for _, tag in options if tag]
    return list(dict.fromkeys(found))


def paraphrases() -> dict[str, tuple[str, ...]]:
    """Canonical tag -> the other names the teacher may give it."""
    return {t: v for t, v, _ in TASKS + MODIFIERS}


def make_tagged_queries(n: int = 2000, seed: int = 0, variant_rate: float = 0.3, drop_rate: float = 0.05,
                        modifier_rate: float = 0.6, max_modifiers: int = 2,
                        tasks: Sequence[str] | None = None) -> TaggedQueries:
    """Draw ``n`` queries with teacher tags (deterministic for a ``seed``).

    ``variant_rate``: chance that the teacher names a task or modifier tag by a
    paraphrase; ``drop_rate``: chance that it leaves out a tag (never the last one);
    ``modifier_rate``: chance of each of up to ``max_modifiers`` modifiers; ``tasks``:
    restrict to these task tags.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    for name, value in (("variant_rate", variant_rate), ("drop_rate", drop_rate), ("modifier_rate", modifier_rate)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    pool = TASKS if tasks is None else tuple(t for t in TASKS if t[0] in set(tasks))
    if not pool:
        raise ValueError(f"no task among {tasks}; known: {[t for t, _, _ in TASKS]}")
    names = paraphrases()
    rng = np.random.default_rng(seed)
    queries, teacher, truth = [], [], []
    for _ in range(n):
        task, _, phrasings = pool[int(rng.integers(len(pool)))]
        tags = [task]
        parts = [_fill(phrasings[int(rng.integers(len(phrasings)))], rng, tags)]
        chosen = rng.permutation(len(MODIFIERS))[:max_modifiers]
        for m in chosen.tolist():
            if rng.random() < modifier_rate:
                mtag, _, mphr = MODIFIERS[m]
                tags.append(mtag)
                parts.append(_fill(mphr[int(rng.integers(len(mphr)))], rng, tags))
        opener = _OPENERS[int(rng.integers(len(_OPENERS)))]
        queries.append(opener + " ".join(parts))
        canonical = list(dict.fromkeys(tags))
        truth.append(canonical)
        written = []
        for tag in canonical:
            if len(canonical) > 1 and rng.random() < drop_rate and len(written) + 1 < len(canonical):
                continue
            alts = names.get(tag, ())
            name = alts[int(rng.integers(len(alts)))] if alts and rng.random() < variant_rate else tag
            written.append({"tag": name, "explanation": f"The query involves {tag.lower()}."})
        teacher.append(written)
    params = {"n": n, "seed": seed, "variant_rate": variant_rate, "drop_rate": drop_rate,
              "modifier_rate": modifier_rate, "max_modifiers": max_modifiers}
    return TaggedQueries(queries, teacher, truth, params)
