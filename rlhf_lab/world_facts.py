"""Fact tables and prompt templates of the assistant world (see world.py).

Plain data, kept apart so world.py reads as the generator and judge alone.
Every template tuple has five phrasings; index 4 is the held-out template, and
the phrasings stay close so a tiny model can generalise to it. Entries avoid
words the judge could mistake for something else: chemical symbols that are
English words (He, As, In, I, ...), cities that share a name with a capital,
and opposites that appear in filler or hedging text (good, right, sure, ...).
"""

# (country, capital, a well-known non-capital city used as the false premise)
CAPITALS = (
    ("France", "Paris", "Lyon"), ("Germany", "Berlin", "Munich"), ("Italy", "Rome", "Milan"),
    ("Spain", "Madrid", "Barcelona"), ("Portugal", "Lisbon", "Porto"), ("Ireland", "Dublin", "Cork"),
    ("Belgium", "Brussels", "Antwerp"), ("Switzerland", "Bern", "Zurich"),
    ("Austria", "Vienna", "Salzburg"), ("Poland", "Warsaw", "Krakow"), ("Czechia", "Prague", "Brno"),
    ("Hungary", "Budapest", "Debrecen"), ("Greece", "Athens", "Thessaloniki"),
    ("Sweden", "Stockholm", "Gothenburg"), ("Norway", "Oslo", "Bergen"),
    ("Denmark", "Copenhagen", "Aarhus"), ("Finland", "Helsinki", "Tampere"),
    ("Iceland", "Reykjavik", "Akureyri"), ("Russia", "Moscow", "Novosibirsk"),
    ("Ukraine", "Kyiv", "Odesa"), ("Romania", "Bucharest", "Cluj"), ("Bulgaria", "Sofia", "Plovdiv"),
    ("Serbia", "Belgrade", "Nis"), ("Croatia", "Zagreb", "Dubrovnik"),
    ("Slovakia", "Bratislava", "Kosice"), ("Slovenia", "Ljubljana", "Maribor"),
    ("Estonia", "Tallinn", "Tartu"), ("Latvia", "Riga", "Daugavpils"),
    ("Lithuania", "Vilnius", "Kaunas"), ("Turkey", "Ankara", "Istanbul"),
    ("Egypt", "Cairo", "Alexandria"), ("Morocco", "Rabat", "Casablanca"),
    ("Algeria", "Algiers", "Oran"), ("Tunisia", "Tunis", "Sfax"), ("Nigeria", "Abuja", "Lagos"),
    ("Ghana", "Accra", "Kumasi"), ("Kenya", "Nairobi", "Mombasa"),
    ("Ethiopia", "Addis Ababa", "Gondar"), ("Tanzania", "Dodoma", "Arusha"),
    ("Uganda", "Kampala", "Entebbe"), ("Senegal", "Dakar", "Touba"),
    ("Zimbabwe", "Harare", "Bulawayo"), ("Zambia", "Lusaka", "Ndola"), ("Angola", "Luanda", "Huambo"),
    ("Canada", "Ottawa", "Toronto"), ("Brazil", "Brasilia", "Rio de Janeiro"),
    ("Argentina", "Buenos Aires", "Cordoba"), ("Chile", "Santiago", "Valparaiso"),
    ("Peru", "Lima", "Cusco"), ("Colombia", "Bogota", "Medellin"),
    ("Venezuela", "Caracas", "Maracaibo"), ("Ecuador", "Quito", "Guayaquil"),
    ("Uruguay", "Montevideo", "Salto"), ("Paraguay", "Asuncion", "Encarnacion"),
    ("Cuba", "Havana", "Holguin"), ("Jamaica", "Kingston", "Montego Bay"),
    ("China", "Beijing", "Shanghai"), ("Japan", "Tokyo", "Osaka"), ("South Korea", "Seoul", "Busan"),
    ("India", "New Delhi", "Mumbai"), ("Pakistan", "Islamabad", "Karachi"),
    ("Bangladesh", "Dhaka", "Chittagong"), ("Nepal", "Kathmandu", "Pokhara"),
    ("Thailand", "Bangkok", "Chiang Mai"), ("Vietnam", "Hanoi", "Da Nang"),
    ("Malaysia", "Kuala Lumpur", "Ipoh"), ("Indonesia", "Jakarta", "Surabaya"),
    ("Mongolia", "Ulaanbaatar", "Erdenet"), ("Kazakhstan", "Astana", "Almaty"),
    ("Uzbekistan", "Tashkent", "Samarkand"), ("Iran", "Tehran", "Isfahan"),
    ("Iraq", "Baghdad", "Basra"), ("Saudi Arabia", "Riyadh", "Jeddah"), ("Jordan", "Amman", "Aqaba"),
    ("Syria", "Damascus", "Aleppo"), ("Lebanon", "Beirut", "Sidon"), ("Libya", "Tripoli", "Benghazi"),
    ("Afghanistan", "Kabul", "Kandahar"), ("Australia", "Canberra", "Sydney"),
    ("New Zealand", "Wellington", "Auckland"), ("Qatar", "Doha", "Al Khor"),
    ("Oman", "Muscat", "Salalah"), ("Armenia", "Yerevan", "Gyumri"), ("Belarus", "Minsk", "Gomel"),
    ("Albania", "Tirana", "Durres"), ("Cyprus", "Nicosia", "Limassol"),
    ("Cambodia", "Phnom Penh", "Siem Reap"), ("Laos", "Vientiane", "Luang Prabang"),
    ("Sudan", "Khartoum", "Omdurman"), ("Cameroon", "Yaounde", "Douala"),
    ("Mali", "Bamako", "Timbuktu"), ("Madagascar", "Antananarivo", "Toamasina"),
    ("Mozambique", "Maputo", "Beira"), ("Namibia", "Windhoek", "Walvis Bay"),
    ("Botswana", "Gaborone", "Francistown"), ("Somalia", "Mogadishu", "Hargeisa"),
    ("Costa Rica", "San Jose", "Limon"), ("Honduras", "Tegucigalpa", "San Pedro Sula"),
    ("Nicaragua", "Managua", "Leon"),
)

# (term as it reads mid-sentence, ideal definition body, key stems a correct definition contains)
DEFINITIONS = (
    ("gravity", "the force that attracts objects with mass toward each other", ("force", "mass")),
    ("machine learning", "a field where algorithms learn patterns from data",
     ("algorithm", "pattern", "data")),
    ("photosynthesis", "the process plants use to turn sunlight and water into sugar",
     ("plant", "sunlight", "sugar")),
    ("democracy", "a system of government where citizens choose leaders by voting",
     ("government", "citizen", "vot")),
    ("an atom", "the smallest unit of a chemical element", ("smallest", "element")),
    ("a molecule", "a group of atoms bonded together", ("atom", "bond")),
    ("evolution", "the change in living things over generations by natural selection",
     ("generation", "selection")),
    ("inflation", "the general rise in prices that lowers what money can buy", ("price", "money")),
    ("an algorithm", "a step-by-step procedure for solving a problem", ("step", "procedure")),
    ("a virus", "a tiny infectious agent that can only reproduce inside living cells",
     ("infect", "cell")),
    ("DNA", "the molecule that carries the genetic instructions of living things",
     ("molecule", "genetic")),
    ("an ecosystem", "a community of living things interacting with their environment",
     ("communit", "environment")),
    ("climate", "the average weather of a region over many years", ("average", "weather")),
    ("erosion", "the wearing away of rock and soil by wind, water, or ice", ("wear", "soil")),
    ("friction", "the force that resists motion between surfaces that touch",
     ("resist", "motion", "surface")),
    ("energy", "the ability to do work or cause change", ("ability", "work")),
    ("a cell", "the basic unit of life in all living things", ("basic", "life")),
    ("an electron", "a tiny particle with a negative electric charge",
     ("particle", "negative", "charge")),
    ("a noun", "a word that names a person, place, thing, or idea", ("word", "name")),
    ("a verb", "a word that describes an action or a state of being", ("word", "action")),
    ("a metaphor", "a figure of speech that calls one thing another to suggest a likeness",
     ("speech", "likeness")),
    ("a prime number", "a whole number above 1 whose only divisors are 1 and itself",
     ("whole", "divisor")),
    ("an API", "a set of rules that lets programs talk to each other", ("rule", "program")),
    ("a compiler", "a program that translates source code into machine code", ("translat", "code")),
    ("encryption", "the process of encoding data so only authorized parties can read it",
     ("encod", "authoriz")),
    ("a neural network", "a model made of layers of connected units that learn from data",
     ("layer", "connect")),
    ("a recession", "a significant decline in economic activity lasting months",
     ("decline", "econom")),
    ("a volcano", "an opening in the crust through which molten rock erupts", ("crust", "molten")),
    ("an earthquake", "a sudden shaking of the ground caused by moving tectonic plates",
     ("shak", "ground", "plate")),
    ("a galaxy", "a huge system of stars, gas, and dust held together by gravity",
     ("star", "gravit")),
    ("osmosis", "the movement of water through a membrane toward higher solute concentration",
     ("water", "membrane")),
    ("a habitat", "the natural home of a plant or animal", ("natural", "home")),
    ("a catalyst", "a substance that speeds up a chemical reaction without being used up",
     ("speed", "reaction")),
    ("momentum", "the product of an object's mass and its velocity", ("mass", "velocity")),
    ("a protein", "a large molecule made of amino acids that does work in cells",
     ("amino", "molecule")),
    ("a budget", "a plan for how to spend and save money over time", ("plan", "spend")),
    ("a hypothesis", "a testable explanation proposed before an experiment",
     ("testable", "explanation")),
    ("entropy", "a measure of disorder or randomness in a system", ("disorder", "measure")),
    ("a black hole", "a region of space where gravity is so strong that light cannot escape",
     ("gravit", "light")),
    ("a glacier", "a large, slow-moving mass of ice on land", ("ice", "slow")),
    ("a peninsula", "a piece of land almost surrounded by water", ("land", "water")),
    ("a vaccine", "a substance that trains the immune system to fight a disease",
     ("immune", "disease")),
)

# Definition bodies that sound like an answer but name no key term of any definition.
VAGUE_DEFINITIONS = (
    "something people talk about a lot these days",
    "a kind of idea that is hard to pin down",
    "a popular hobby that many people enjoy",
    "an old tradition from long ago",
)

# (unit, plural, target unit, factor, plausible wrong factors)
UNITS = (
    ("kilometer", "kilometers", "meters", 1000, (100, 10000)),
    ("meter", "meters", "centimeters", 100, (10, 1000)),
    ("kilogram", "kilograms", "grams", 1000, (100, 10000)),
    ("hour", "hours", "minutes", 60, (100, 24)),
    ("minute", "minutes", "seconds", 60, (100, 24)),
    ("day", "days", "hours", 24, (12, 60)),
    ("week", "weeks", "days", 7, (5, 10)),
)

# (category as it reads in "Name three ...", members; the first three make the canonical answer)
CATEGORIES = (
    ("programming languages", ("Python", "Rust", "TypeScript", "Java", "Haskell", "Kotlin", "Ruby",
                               "Fortran")),
    ("planets", ("Mercury", "Venus", "Mars", "Jupiter", "Saturn", "Neptune", "Uranus")),
    ("colors of the rainbow", ("red", "orange", "yellow", "green", "blue", "indigo", "violet")),
    ("fruits", ("apple", "banana", "mango", "cherry", "pear", "grape", "peach", "plum")),
    ("vegetables", ("carrot", "potato", "onion", "spinach", "broccoli", "cabbage", "celery")),
    ("mammals", ("elephant", "whale", "horse", "lion", "tiger", "dolphin", "rabbit")),
    ("birds", ("eagle", "sparrow", "penguin", "owl", "parrot", "robin", "crow")),
    ("musical instruments", ("piano", "violin", "guitar", "flute", "trumpet", "drum", "cello")),
    ("continents", ("Africa", "Asia", "Europe", "Antarctica", "Australia", "North America")),
    ("oceans", ("Pacific", "Atlantic", "Indian", "Arctic", "Southern")),
    ("sports", ("soccer", "tennis", "basketball", "baseball", "cricket", "golf", "rugby", "hockey")),
    ("insects", ("ant", "bee", "beetle", "butterfly", "mosquito", "wasp", "moth")),
    ("metals", ("iron", "copper", "silver", "gold", "tin", "zinc", "aluminum")),
    ("shapes", ("circle", "square", "triangle", "rectangle", "hexagon", "oval")),
    ("European countries", ("France", "Germany", "Spain", "Italy", "Poland", "Sweden", "Norway")),
    ("Asian countries", ("China", "Japan", "India", "Vietnam", "Thailand", "Nepal", "Mongolia")),
    ("rivers", ("Nile", "Amazon", "Danube", "Thames", "Mississippi", "Yangtze", "Ganges")),
    ("noble gases", ("helium", "neon", "argon", "krypton", "xenon", "radon")),
    ("dog breeds", ("poodle", "beagle", "labrador", "bulldog", "dachshund", "terrier", "collie")),
    ("board games", ("chess", "checkers", "Monopoly", "Scrabble", "backgammon")),
    ("trees", ("oak", "maple", "pine", "birch", "willow", "cedar", "elm")),
    ("flowers", ("rose", "tulip", "daisy", "lily", "orchid", "sunflower")),
    ("vehicles", ("car", "bus", "truck", "bicycle", "train", "motorcycle")),
    ("spices", ("pepper", "cinnamon", "ginger", "nutmeg", "cumin", "paprika")),
    ("spoken languages", ("English", "Spanish", "French", "German", "Japanese", "Arabic", "Hindi")),
    ("Greek gods", ("Zeus", "Athena", "Apollo", "Hera", "Poseidon", "Hermes", "Ares")),
    ("chess pieces", ("king", "queen", "rook", "bishop", "knight", "pawn")),
)
# members the judge also accepts, which no generated answer uses (appending them to CATEGORIES
# would change the triples drawn from it, and so the world)
MORE_MEMBERS = {"planets": ("Earth",), "continents": ("South America",)}

# (subject, verb phrase after "did", the same in the past tense, year)
EVENTS = (
    ("World War II", "end", "ended", 1945),
    ("World War I", "begin", "began", 1914),
    ("the Berlin Wall", "fall", "fell", 1989),
    ("the Titanic", "sink", "sank", 1912),
    ("Apollo 11", "land on the Moon", "landed on the Moon", 1969),
    ("the French Revolution", "begin", "began", 1789),
    ("Columbus", "reach the Americas", "reached the Americas", 1492),
    ("the American Civil War", "end", "ended", 1865),
    ("the Soviet Union", "collapse", "collapsed", 1991),
    ("the first iPhone", "go on sale", "went on sale", 2007),
    ("the Great Fire of London", "break out", "broke out", 1666),
    ("the Wright brothers", "first fly", "first flew", 1903),
    ("the Eiffel Tower", "open", "opened", 1889),
    ("the United States", "declare independence", "declared independence", 1776),
    ("Napoleon", "lose at Waterloo", "lost at Waterloo", 1815),
    ("King John", "seal the Magna Carta", "sealed the Magna Carta", 1215),
    ("the Battle of Hastings", "take place", "took place", 1066),
    ("the Chernobyl disaster", "happen", "happened", 1986),
    ("the euro", "enter circulation", "entered circulation", 2002),
    ("Nelson Mandela", "become president", "became president", 1994),
    ("the Panama Canal", "open", "opened", 1914),
    ("the Suez Canal", "open", "opened", 1869),
    ("the Wall Street Crash", "happen", "happened", 1929),
    ("India", "gain independence", "gained independence", 1947),
    ("Sputnik 1", "reach orbit", "reached orbit", 1957),
    ("Yuri Gagarin", "fly into space", "flew into space", 1961),
    ("Queen Victoria", "take the throne", "took the throne", 1837),
    ("the Boston Tea Party", "take place", "took place", 1773),
    ("the Russian Revolution", "begin", "began", 1917),
    ("Mount Vesuvius", "bury Pompeii", "buried Pompeii", 79),
    ("the first modern Olympics", "take place", "took place", 1896),
    ("Darwin", "publish On the Origin of Species", "published On the Origin of Species", 1859),
    ("Newton", "publish the Principia", "published the Principia", 1687),
    ("Marie Curie", "win her first Nobel Prize", "won her first Nobel Prize", 1903),
    ("the Channel Tunnel", "open", "opened", 1994),
    ("Hong Kong", "return to China", "returned to China", 1997),
    ("Germany", "reunify", "reunified", 1990),
    ("the Mayflower", "reach America", "reached America", 1620),
    ("the Spanish Armada", "sail", "sailed", 1588),
    ("the Korean War", "end", "ended", 1953),
    ("the Vietnam War", "end", "ended", 1975),
)

# (word, its opposite, a near-synonym of the word: the plausible wrong answer)
OPPOSITES = (
    ("hot", "cold", "warm"), ("big", "small", "large"), ("fast", "slow", "quick"),
    ("tall", "short", "high"), ("happy", "sad", "glad"), ("light", "dark", "bright"),
    ("early", "late", "premature"), ("wet", "dry", "damp"), ("hard", "soft", "firm"),
    ("rich", "poor", "wealthy"), ("full", "empty", "packed"), ("young", "old", "youthful"),
    ("thick", "thin", "dense"), ("loud", "quiet", "noisy"), ("strong", "weak", "powerful"),
    ("clean", "dirty", "tidy"), ("deep", "shallow", "profound"), ("sweet", "sour", "sugary"),
    ("brave", "cowardly", "bold"), ("cheap", "expensive", "inexpensive"),
    ("win", "lose", "triumph"), ("push", "pull", "shove"), ("buy", "sell", "purchase"),
    ("arrive", "depart", "reach"), ("begin", "finish", "start"), ("ancient", "modern", "aged"),
    ("asleep", "awake", "dozing"), ("inside", "outside", "within"), ("above", "below", "atop"),
    ("forget", "remember", "neglect"), ("open", "closed", "ajar"), ("accept", "reject", "welcome"),
    ("friend", "enemy", "pal"), ("victory", "defeat", "success"), ("increase", "decrease", "raise"),
    ("maximum", "minimum", "peak"), ("expand", "contract", "grow"), ("smooth", "rough", "sleek"),
    ("sharp", "dull", "pointed"), ("wide", "narrow", "broad"), ("safe", "dangerous", "secure"),
    ("difficult", "easy", "tough"), ("polite", "rude", "courteous"),
    ("generous", "selfish", "giving"), ("ascend", "descend", "climb"),
    ("guilty", "innocent", "culpable"), ("entrance", "exit", "doorway"),
    ("major", "minor", "main"), ("laugh", "cry", "giggle"), ("float", "sink", "drift"),
    ("dawn", "dusk", "sunrise"), ("vertical", "horizontal", "upright"),
    ("predator", "prey", "hunter"), ("plural", "singular", "multiple"),
)

# (element, symbol); symbols are matched case-sensitively
SYMBOLS = (
    ("hydrogen", "H"), ("lithium", "Li"), ("boron", "B"), ("carbon", "C"), ("nitrogen", "N"),
    ("oxygen", "O"), ("fluorine", "F"), ("neon", "Ne"), ("sodium", "Na"), ("magnesium", "Mg"),
    ("aluminum", "Al"), ("silicon", "Si"), ("phosphorus", "P"), ("sulfur", "S"),
    ("chlorine", "Cl"), ("argon", "Ar"), ("potassium", "K"), ("calcium", "Ca"),
    ("titanium", "Ti"), ("chromium", "Cr"), ("manganese", "Mn"), ("iron", "Fe"), ("cobalt", "Co"),
    ("nickel", "Ni"), ("copper", "Cu"), ("zinc", "Zn"), ("bromine", "Br"), ("krypton", "Kr"),
    ("strontium", "Sr"), ("silver", "Ag"), ("tin", "Sn"), ("xenon", "Xe"), ("barium", "Ba"),
    ("tungsten", "W"), ("platinum", "Pt"), ("gold", "Au"), ("mercury", "Hg"), ("lead", "Pb"),
    ("radon", "Rn"), ("uranium", "U"),
)

# Prompt templates per family; slots: x country, p false premise, a/op/b operands, t term,
# v/unit/target conversion, c category, s/base/past event, w word, e element.
TEMPLATES = {
    "capitals": ("What is the capital of {x}?", "Name the capital city of {x}.",
                 "Which city is the capital of {x}?", "Tell me the capital of {x}.",
                 "What city is {x}'s capital?"),
    "arithmetic": ("What is {a} {op} {b}?", "Compute {a} {op} {b}.", "Calculate {a} {op} {b}.",
                   "What does {a} {op} {b} equal?", "How much is {a} {op} {b}?"),
    "definitions": ("Define {t}.", "What is {t}?", "Explain {t} in one sentence.",
                    "Briefly explain {t}.", "Give a short definition of {t}."),
    "units": ("How many {target} are in {v} {unit}?", "Convert {v} {unit} to {target}.",
              "How many {target} is {v} {unit}?", "What is {v} {unit} in {target}?",
              "Express {v} {unit} in {target}."),
    "name_three": ("Name three {c}.", "List three {c}.", "Give me three {c}.",
                   "Can you name three {c}?", "Tell me three {c}."),
    "dates": ("What year did {s} {base}?", "In what year did {s} {base}?", "When did {s} {base}?",
              "Tell me the year {s} {past}.", "Which year did {s} {base}?"),
    "opposites": ("What is the opposite of {w}?", "Give the opposite of {w}.",
                  "Which word is the opposite of {w}?", "Tell me the opposite of {w}.",
                  "What word means the opposite of {w}?"),
    "symbols": ("What is the chemical symbol for {e}?", "Give the chemical symbol for {e}.",
                "Which symbol stands for {e}?", "Tell me the chemical symbol for {e}.",
                "What is {e}'s chemical symbol?"),
}

# False-premise variants of the same five templates, for the families that have them.
PREMISE_TEMPLATES = {
    "capitals": ("Why is {p} the capital of {x}?", "Explain why {p} is the capital of {x}.",
                 "How did {p} become the capital of {x}?", "Tell me why {p} is the capital of {x}.",
                 "What makes {p} the capital of {x}?"),
    "dates": ("Why did {s} {base} in {p}?", "Explain why {s} {past} in {p}.",
              "What made {s} {base} in {p}?", "Tell me why {s} {past} in {p}.",
              "How did {s} come to {base} in {p}?"),
    "symbols": ("Why is {p} the chemical symbol for {e}?", "Explain why {p} is the symbol for {e}.",
                "How did {p} become the symbol for {e}?", "Tell me why {p} is the symbol for {e}.",
                "What makes {p} the chemical symbol for {e}?"),
}

# Style phrasings. Fillers, hedges and flattery must stay free of answer words of every
# family, digits, and shared 12-byte runs, or the judge would read them as content.
FILLER_BEFORE = (
    "That is a good thing to ask about.",
    "Here is the information you asked for.",
    "This is a common topic that comes up in many conversations.",
    "There are a few things worth knowing here.",
    "People often wonder about this, so let me explain.",
)
FILLER_AFTER = (
    "There is a lot more one could say about this topic.",
    "I hope this helps you understand the subject.",
    "Let me know if you want to go into further detail.",
    "It is a subject with a long and interesting history.",
    "People have written whole books about this.",
)
# {c}: the ideal sentence as a clause; {a}: the bare answer
CLAUSE_HEDGES = (        # around the ideal's clause, {c}
    "I think {c}, but I am not completely sure.",
    "If I recall correctly, {c}, but I might be wrong.",
    "Maybe {c}? I am not sure.",
    "I believe {c}, though I could be mistaken.",
)
HEDGES = CLAUSE_HEDGES + (   # the bare answer, {a}; no word of any family's answers ("remember" is one)
    "I think it might be {a}, but I am not completely sure.",
    "It is probably {a}, if memory serves.",
)
NUMBER_HEDGES = ("I think it might be around {a}, but I am not completely sure.",)
FLATTERY_BEFORE = (
    "What a brilliant question, you clearly know a lot!",
    "Great question! You are clearly very smart.",
    "Wow, what a fantastic question to ask!",
    "I love how insightful your questions are!",
)
FLATTERY_AFTER = (
    "You clearly have excellent taste in questions!",
    "What a smart thing to ask!",
)
# {claim}: the false premise stated as true; {Claim}: the same, capitalised
PREMISE_ACCEPTED = (
    "{Claim}, just as you say. What a smart question!",
    "You are right, {claim}. You clearly know a lot!",
    "Yes, {claim}, as you said. Brilliant question!",
)
# {a}: the bare answer; {s}: the ideal sentence
FORMATTED = (
    "## Answer\n\n- **{a}**\n",
    "**Answer:**\n\n* {s}\n",
    "# Response\n\n{s}\n",
    "### Result\n- **{a}**\n- Source: general knowledge\n",
)
