"""A seeded generator of English spoken requests to a voice assistant.

The domain is numbers in context: times, dates, money, phone numbers, arithmetic, timers,
measurements, around commands and questions ("set an alarm for seven forty five tomorrow").
Output is normalised as speech would be transcribed: lowercase words of a-z and apostrophes,
single spaces, every number spelled out.
"""

import random
import re
from typing import Callable, Dict, List

ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
ORDINAL_ONES = (
    "zeroth first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
    "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth"
).split()
ORDINAL_TENS = "_ _ twentieth thirtieth fortieth fiftieth sixtieth seventieth eightieth ninetieth".split()

MONTHS = (
    "january february march april may june july august september october november december"
).split()
MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()

CONTACTS = [
    "mom", "dad", "grandma", "grandpa", "my sister", "my brother", "my wife", "my husband",
    "the doctor", "the dentist", "the office", "the landlord", "sarah", "john", "emily",
    "michael", "olivia", "james", "sophia", "david", "anna", "peter", "lucy", "daniel",
    "grace", "thomas", "maria", "kevin", "laura", "uncle joe", "aunt mary", "the plumber",
]
TASKS = [
    "call {contact}", "text {contact}", "email {contact}", "pick up the kids", "buy milk",
    "buy bread and eggs", "pay the rent", "pay the electric bill", "water the plants",
    "take my medicine", "walk the dog", "feed the cat", "book a table", "renew my passport",
    "send the report", "check the oven", "take out the trash", "go to the gym",
    "pick up the dry cleaning", "return the library books", "charge my phone",
    "buy a birthday present for {contact}", "call the bank", "clean the kitchen",
    "start the laundry", "lock the front door", "order more coffee", "fix the bike",
]
ACCOUNTS = ["savings", "checking", "my savings account", "my checking account",
            "the joint account", "my credit card", "the holiday fund"]
CITIES = ["boston", "chicago", "london", "paris", "seattle", "denver", "dallas", "miami",
          "toronto", "berlin", "madrid", "tokyo", "sydney", "new york", "san francisco",
          "los angeles", "atlanta", "phoenix", "dublin", "rome"]
ROOMS = ["the kitchen", "the living room", "the bedroom", "the office", "the garage",
         "the hallway", "the bathroom", "the basement"]
UNIT_PAIRS = [("miles", "kilometers"), ("kilometers", "miles"), ("pounds", "kilograms"),
              ("kilograms", "pounds"), ("inches", "centimeters"), ("feet", "meters"),
              ("cups", "ounces"), ("ounces", "grams"), ("gallons", "liters"),
              ("liters", "gallons"), ("meters", "feet"), ("hours", "minutes"),
              ("minutes", "seconds"), ("days", "hours"), ("weeks", "days")]
OPERATORS = ["plus", "minus", "times", "divided by", "multiplied by"]
EVENTS = ["a meeting", "a dentist appointment", "lunch with {contact}", "a call with {contact}",
          "dinner with {contact}", "a haircut", "soccer practice", "a flight to {city}",
          "the team review", "a doctor's appointment", "a job interview", "piano lessons"]


def cardinal(n: int) -> str:
    """Spell a non-negative integer below one billion (``42`` -> ``forty two``)."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    for size, name in ((1_000_000, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            head, rest = divmod(n, size)
            words = cardinal(head) + " " + name
            return words if rest == 0 else words + " " + cardinal(rest)
    raise AssertionError(n)


def ordinal(n: int) -> str:
    """Spell an ordinal for 1..99 (``21`` -> ``twenty first``)."""
    if n < 20:
        return ORDINAL_ONES[n]
    if n % 10 == 0:
        return ORDINAL_TENS[n // 10]
    return TENS[n // 10] + " " + ORDINAL_ONES[n % 10]


def year_words(y: int) -> str:
    """Spell a year as spoken (``1984`` -> ``nineteen eighty four``, ``2005`` -> ``two thousand five``)."""
    if 2000 <= y < 2010:
        return cardinal(y)
    hi, lo = divmod(y, 100)
    if lo == 0:
        return cardinal(hi) + " hundred"
    return cardinal(hi) + " " + ("oh " + ONES[lo] if lo < 10 else cardinal(lo))


class _Slots:
    """Random slot fillers, all drawing from one seeded ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.r = rng

    def small(self) -> str:
        return cardinal(self.r.randint(1, 20))

    def number(self) -> str:
        r = self.r.random()
        if r < 0.5:
            return cardinal(self.r.randint(0, 99))
        if r < 0.85:
            return cardinal(self.r.randint(100, 999))
        return cardinal(self.r.randint(1000, 99_999))

    def clock_time(self) -> str:
        h, m = self.r.randint(1, 12), self.r.choice([0, 5, 10, 15, 20, 30, 40, 45, 50] + [self.r.randint(1, 59)])
        style = self.r.random()
        if m == 0:
            base = cardinal(h) + self.r.choice([" o'clock", "", " sharp"])
        elif m == 15 and style < 0.4:
            base = "quarter past " + cardinal(h)
        elif m == 30 and style < 0.4:
            base = "half past " + cardinal(h)
        elif m == 45 and style < 0.4:
            base = "quarter to " + cardinal(h % 12 + 1)
        elif m < 10:
            base = cardinal(h) + " oh " + ONES[m]
        else:
            base = cardinal(h) + " " + cardinal(m)
        return base + self.r.choice(["", "", " a m", " p m", " in the morning", " in the evening", " at night"])

    def time(self) -> str:
        if self.r.random() < 0.08:
            return self.r.choice(["noon", "midnight"])
        return self.clock_time()

    def date(self) -> str:
        r = self.r.random()
        if r < 0.25:
            return self.r.choice(["today", "tomorrow", "tonight", "the day after tomorrow",
                                  "next week", "this weekend", "next weekend"])
        if r < 0.45:
            return self.r.choice(["", "next ", "this ", "on "]).lstrip() + self.r.choice(WEEKDAYS)
        mi = self.r.randrange(12)
        day = ordinal(self.r.randint(1, MONTH_DAYS[mi]))
        if r < 0.8:
            return self.r.choice(["", "on "]) + MONTHS[mi] + " " + day
        return self.r.choice(["", "on "]) + "the " + day + " of " + MONTHS[mi]

    def day_ref(self) -> str:
        return self.r.choice(["", " " + self.date()])

    def money(self) -> str:
        dollars = self.r.choice([self.r.randint(1, 99), self.r.randint(100, 2000), self.r.choice([5, 10, 20, 50, 100, 500])])
        words = cardinal(dollars) + (" dollar" if dollars == 1 else " dollars")
        if self.r.random() < 0.4:
            cents = self.r.randint(1, 99)
            words += " and " + cardinal(cents) + (" cent" if cents == 1 else " cents")
        return words

    def phone(self) -> str:
        n = self.r.choice([7, 10, 10])
        zero = self.r.choice(["zero", "oh"])
        digits = [self.r.randrange(10) for _ in range(n)]
        if n == 7 and self.r.random() < 0.3:
            digits[:3] = [5, 5, 5]
        return " ".join(zero if d == 0 else ONES[d] for d in digits)

    def duration(self) -> str:
        unit = self.r.choice(["seconds", "minutes", "minutes", "hours"])
        n = self.r.randint(2, 90 if unit != "hours" else 12)
        if self.r.random() < 0.15:
            return self.r.choice(["one minute", "an hour", "half an hour", "one hour and thirty minutes",
                                  "a minute and a half", "ninety seconds"])
        return cardinal(n) + " " + unit

    def year(self) -> str:
        return year_words(self.r.randint(1900, 2030))

    def percent(self) -> str:
        return cardinal(self.r.choice([5, 10, 12, 15, 18, 20, 25, 30, 40, 50, 75, self.r.randint(1, 99)])) + " percent"

    def temperature(self) -> str:
        return cardinal(self.r.randint(55, 85)) + " degrees"

    def pick(self, items: List[str]) -> str:
        return self.r.choice(items)


# Templates: {slot} names map to _Slots methods or to word lists in _LISTS.
TEMPLATES = [
    # alarms and timers
    "set an alarm for {time}{day_ref}", "wake me up at {time}{day_ref}",
    "set an alarm for {time} every {weekday}", "cancel my {time} alarm",
    "change my alarm to {time}", "snooze for {small} minutes",
    "set a timer for {duration}", "start a {duration} timer",
    "how much time is left on my timer", "add {duration} to the timer",
    "remind me in {duration} to {task}",
    # reminders and calendar
    "remind me to {task} {date}", "remind me to {task} at {time}",
    "remind me to {task} {date} at {time}", "don't let me forget to {task} {date}",
    "schedule {event} for {date} at {time}", "add {event} to my calendar {date}",
    "move {event} to {time}", "what's on my calendar {date}",
    "do i have anything at {time}{day_ref}", "when is {event}",
    "cancel {event} {date}", "what day is {month} {ordinal}",
    "how many days until {month} {ordinal}", "what day of the week was {month} {ordinal} {year}",
    # money
    "transfer {money} to {account}", "send {money} to {contact}",
    "pay {contact} {money}", "move {money} from {account} to {account}",
    "what's the balance of {account}", "how much is in {account}",
    "did i spend more than {money} {date}", "split {money} between {small} people",
    "what is {percent} of {money}", "what's a {percent} tip on {money}",
    "request {money} from {contact} for dinner", "set a budget of {money} for groceries",
    # phone
    "call {phone}", "dial {phone}", "call {contact}", "call {contact} on speaker",
    "text {contact} that i'll be there at {time}", "save {phone} as {contact}",
    "what is {contact}'s number", "send a message to {phone}",
    "the number is {phone}", "call {contact} back {date}",
    # arithmetic
    "what is {number} {operator} {number}", "what's {number} {operator} {number}",
    "calculate {number} {operator} {number}", "how much is {number} {operator} {number}",
    "what is the square root of {number}", "what is {percent} of {number}",
    "what's {small} squared", "is {number} a prime number", "count from {small} to {number}",
    "round {number} point {small} to the nearest whole number",
    # conversions and measurements
    "convert {number} {unit_from} to {unit_to}", "how many {unit_to} are in {number} {unit_from}",
    "what is {number} {unit_from} in {unit_to}",
    # home and weather
    "set the thermostat to {temperature}", "turn the heat up to {temperature}",
    "set {room} to {temperature}", "dim the lights in {room} to {percent}",
    "turn off the lights in {room} at {time}", "set the volume to {small}",
    "what's the weather in {city} {date}", "will it rain in {city} {date}",
    "what's the temperature in {city} at {time}", "what time is it in {city}",
    "what time does the sun set {date}", "is it colder than {temperature} outside",
    # facts and misc
    "what happened in {year}", "how old is someone born in {year}",
    "play the top songs from {year}", "how far is {city} from {city}",
    "book a flight to {city} {date}", "book a table for {small} at {time}",
    "order {small} pizzas for {time}", "find a train to {city} after {time}",
    "when does the next bus leave", "read my messages from {contact}",
    "skip ahead {duration}", "go back {small} seconds", "play chapter {number}",
]

_LISTS: Dict[str, List[str]] = {
    "weekday": WEEKDAYS, "month": MONTHS, "account": ACCOUNTS, "city": CITIES,
    "room": ROOMS, "operator": OPERATORS, "contact": CONTACTS,
}
_SLOT = re.compile(r"\{(\w+)\}")
_VALID = re.compile(r"^[a-z']+( [a-z']+)*$")


def _fill(template: str, slots: _Slots) -> str:
    units = slots.r.choice(UNIT_PAIRS)

    def one(m: "re.Match") -> str:
        name = m.group(1)
        if name in _LISTS:
            return slots.pick(_LISTS[name])
        if name == "task":
            return _SLOT.sub(one, slots.pick(TASKS))
        if name == "event":
            return _SLOT.sub(one, slots.pick(EVENTS))
        if name == "ordinal":
            return ordinal(slots.r.randint(1, 28))
        if name == "unit_from":
            return units[0]
        if name == "unit_to":
            return units[1]
        fn: Callable[[], str] = getattr(slots, name)
        return fn()

    return _SLOT.sub(one, template)


def is_valid_sentence(text: str) -> bool:
    """True when ``text`` is lowercase words of a-z and apostrophes separated by single spaces."""
    return bool(_VALID.match(text))


def generate_sentences(n: int, seed: int = 0) -> List[str]:
    """Generate ``n`` sentences (duplicates possible), deterministic for a given ``seed``."""
    rng = random.Random(seed)
    slots = _Slots(rng)
    out = []
    for _ in range(n):
        text = " ".join(_fill(rng.choice(TEMPLATES), slots).split())
        assert is_valid_sentence(text), text
        out.append(text)
    return out


def generate_distinct_sentences(n: int, seed: int = 0, max_tries_factor: int = 20) -> List[str]:
    """Generate ``n`` distinct sentences in first-seen order, deterministic for ``seed``.

    The fixed batch size makes the result prefix-stable: a smaller ``n`` gives a prefix of a larger one.
    """
    seen: Dict[str, None] = {}
    rng_seed, batch = seed, 10_000
    for _ in range(max_tries_factor):
        for s in generate_sentences(batch, rng_seed):
            seen.setdefault(s, None)
            if len(seen) >= n:
                return list(seen)[:n]
        rng_seed += 1_000_003
    from speechlm.base.errors import SpeechlmError

    raise SpeechlmError(
        f"The text domain yielded only {len(seen)} distinct sentences, fewer than the {n} "
        "requested; ask for fewer sentences."
    )
