"""Hand-written items for the general suite fixtures (MMLU, MMLU-Pro, CMMLU, BBH, ARC-c, HellaSwag, WinoGrande).

These are original questions written for evalkit's tests, not items from the benchmarks. They only need
to be well-formed so OpenCompass's loaders and evaluators handle them exactly as they handle the real data.
"""

# MMLU: {subject: {split: [(question, A, B, C, D, answer)]}}
MMLU = {
    "astronomy": {
        "dev": [("Which of these bodies is classed as a dwarf planet?", "Pluto", "Jupiter", "Neptune", "Saturn", "A")],
        "test": [
            (
                "Which planet in the Solar System has the shortest orbital period?",
                "Mercury",
                "Venus",
                "Earth",
                "Mars",
                "A",
            ),
            (
                "What is the main source of energy in the core of a main-sequence star?",
                "Chemical combustion",
                "Radioactive decay of uranium",
                "Nuclear fusion of hydrogen into helium",
                "Friction between gas layers",
                "C",
            ),
            (
                "Roughly how long does light from the Sun take to reach Earth?",
                "8 seconds",
                "8 minutes",
                "8 hours",
                "8 days",
                "B",
            ),
        ],
    },
    "high_school_geography": {
        "dev": [("Which is the largest ocean on Earth?", "Atlantic", "Indian", "Arctic", "Pacific", "D")],
        "test": [
            (
                "Which line of latitude divides the Earth into the Northern and Southern Hemispheres?",
                "Tropic of Cancer",
                "Prime Meridian",
                "Equator",
                "Arctic Circle",
                "C",
            ),
            (
                "A river delta forms mainly through which process?",
                "Deposition of sediment where a river meets slower water",
                "Glacial erosion of a valley",
                "Volcanic uplift of the sea floor",
                "Wind erosion of desert sand",
                "A",
            ),
            (
                "What is the term for the movement of people from rural areas into cities?",
                "Desertification",
                "Urbanization",
                "Deforestation",
                "Irrigation",
                "B",
            ),
        ],
    },
}

# CMMLU: {subject: {split: [(question, A, B, C, D, answer)]}}
CMMLU = {
    "high_school_geography": {
        "dev": [("世界上面积最大的大洲是？", "亚洲", "非洲", "欧洲", "南美洲", "A")],
        "test": [
            ("地球自转一周大约需要多长时间？", "一小时", "一天", "一个月", "一年", "B"),
            ("赤道附近地区的气候特点通常是？", "终年高温多雨", "四季分明", "终年寒冷干燥", "冬季漫长", "A"),
            ("下列哪一项属于可再生能源？", "煤炭", "石油", "天然气", "太阳能", "D"),
        ],
    },
    "elementary_mathematics": {
        "dev": [("3/4 化成小数是多少？", "0.25", "0.5", "0.75", "0.34", "C")],
        "test": [
            ("12 乘以 8 等于多少？", "86", "96", "106", "108", "B"),
            ("一个正方形的边长是 5 厘米，它的周长是多少厘米？", "10", "15", "20", "25", "C"),
            ("下列哪个数是质数？", "9", "15", "21", "13", "D"),
        ],
    },
}

# MMLU-Pro: {category: {split: [(question, options, answer_letter, cot_content)]}}
MMLU_PRO = {
    "math": {
        "validation": [
            (
                "What is 15% of 200?",
                ["15", "20", "25", "30", "35", "40", "45", "50", "10", "5"],
                "D",
                "A: Let's think step by step. 10% of 200 is 20 and 5% is 10, so 15% is 30. The answer is (D).",
            )
        ],
        "test": [
            ("What is the value of 3^4 - 2^5?", ["49", "47", "81", "17", "32", "51", "45", "64", "50", "48"], "A", ""),
            ("If f(x) = 2x + 3, what is f(f(1))?", ["10", "11", "12", "13", "14", "15", "16", "8", "9", "7"], "D", ""),
            (
                "How many positive divisors does 36 have?",
                ["6", "7", "8", "10", "9", "12", "4", "5", "11", "3"],
                "E",
                "",
            ),
        ],
    },
    "biology": {
        "validation": [
            (
                "Which molecule carries the genetic information of most living organisms?",
                ["DNA", "Glucose", "Cholesterol", "Collagen", "ATP", "Haemoglobin", "Keratin", "Starch", "N/A", "N/A"],
                "A",
                "A: Let's think step by step. Genes are stretches of DNA. The answer is (A).",
            )
        ],
        "test": [
            (
                "Which organelle is the main site of ATP production in eukaryotic cells?",
                [
                    "Ribosome",
                    "Golgi apparatus",
                    "Mitochondrion",
                    "Lysosome",
                    "Nucleolus",
                    "Vacuole",
                    "Centriole",
                    "Peroxisome",
                    "Cell wall",
                    "Cytoskeleton",
                ],
                "C",
                "",
            ),
            (
                "Which base pairs with adenine in double-stranded DNA?",
                [
                    "Uracil",
                    "Cytosine",
                    "Guanine",
                    "Thymine",
                    "Adenine",
                    "Ribose",
                    "Phosphate",
                    "Inosine",
                    "Xanthine",
                    "None of the above",
                ],
                "D",
                "",
            ),
            (
                "What is the main function of red blood cells?",
                [
                    "Fighting infection",
                    "Clotting blood",
                    "Carrying oxygen",
                    "Producing hormones",
                    "Digesting fats",
                    "Storing calcium",
                    "Sending nerve signals",
                    "Filtering toxins",
                    "Making antibodies",
                    "Producing bile",
                ],
                "C",
                "",
            ),
        ],
    },
}

# BBH: {task: [(input, target)]}; one multiple-choice task and one free-form task.
BBH = {
    "date_understanding": [
        (
            "Today is 3/15/2021. What is the date one week from today in MM/DD/YYYY?\nOptions:\n(A) 03/22/2021\n"
            "(B) 03/08/2021\n(C) 04/15/2021\n(D) 03/21/2021",
            "(A)",
        ),
        (
            "Yesterday was 12/31/2019. What is the date today in MM/DD/YYYY?\nOptions:\n(A) 12/30/2019\n"
            "(B) 01/01/2020\n(C) 01/01/2019\n(D) 12/01/2020",
            "(B)",
        ),
        (
            "A meeting planned for 06/10/2022 was moved two days earlier. What is the new date in MM/DD/YYYY?\n"
            "Options:\n(A) 06/12/2022\n(B) 06/10/2022\n(C) 06/08/2022\n(D) 05/10/2022",
            "(C)",
        ),
    ],
    "boolean_expressions": [
        ("not ( True and False ) is", "True"),
        ("True and not True or False is", "False"),
        ("( False or not True ) and True is", "False"),
    ],
}

# ARC-Challenge: (stem, [choice texts], labels, answerKey). One item uses numeric labels, as some real ones do.
ARC_C = [
    (
        "A glass of water left in the sun all day has less water in it by evening. Which process explains this?",
        ["condensation", "evaporation", "precipitation", "freezing"],
        "ABCD",
        "B",
    ),
    (
        "Which tool is best for measuring the mass of a rock?",
        ["a ruler", "a thermometer", "a balance", "a graduated cylinder"],
        "ABCD",
        "C",
    ),
    ("Which of these is a renewable resource?", ["coal", "natural gas", "oil", "wind"], "ABCD", "D"),
    (
        "Plants take in which gas from the air to make their food?",
        ["carbon dioxide", "oxygen", "nitrogen", "helium"],
        "ABCD",
        "A",
    ),
    (
        "What happens to most metal rods when they are heated?",
        ["They contract.", "They turn blue.", "They expand.", "They become magnetic."],
        "1234",
        "3",
    ),
]

# HellaSwag (the preprocessed form OpenCompass reads): (activity, context, [endings], gold index)
HELLASWAG = [
    (
        "Making tea",
        "A person fills a kettle with water and sets it on the stove. Then they",
        [
            "wait for the water to boil and pour it over a tea bag in a cup.",
            "throw the kettle out of the window.",
            "paint the kettle green with a small brush.",
            "read the kettle a bedtime story.",
        ],
        0,
    ),
    (
        "Riding a bike",
        "A child puts on a helmet and climbs onto a bicycle. The child",
        [
            "eats the helmet for lunch.",
            "starts pedaling slowly down the driveway.",
            "folds the bicycle into a paper plane.",
            "swims across the driveway.",
        ],
        1,
    ),
    (
        "Washing dishes",
        "A man fills the sink with warm soapy water. He",
        [
            "plants the dishes in the garden.",
            "sings to the sink until it is empty.",
            "scrubs each plate with a sponge and rinses it.",
            "mails the plates to a friend.",
        ],
        2,
    ),
    (
        "Jogging",
        "A woman ties the laces of her running shoes and steps outside. She",
        [
            "climbs into the oven.",
            "knits a scarf out of the laces.",
            "falls asleep on the doormat for a week.",
            "begins jogging along the path at a steady pace.",
        ],
        3,
    ),
    (
        "Gardening",
        "A gardener digs a small hole in the soil. The gardener",
        [
            "places a seedling in the hole and covers the roots with soil.",
            "fills the hole with soup.",
            "jumps into the hole and vanishes.",
            "reads a newspaper to the hole.",
        ],
        0,
    ),
]

# WinoGrande: (sentence with "_", option1, option2, answer "1"|"2")
WINOGRANDE = [
    ("Maria lent her umbrella to Jenny because _ was going out into the rain.", "Maria", "Jenny", "2"),
    ("The bottle broke when it fell onto the tile floor because the _ was fragile.", "bottle", "floor", "1"),
    ("Tom could not lift the box onto the shelf because the _ was too heavy.", "box", "shelf", "1"),
    ("Anna finished the puzzle faster than Beth because _ had practised all week.", "Anna", "Beth", "1"),
    ("The soup was colder than the tea, so Ken warmed the _ in the microwave.", "tea", "soup", "2"),
]
