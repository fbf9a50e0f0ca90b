"""Differential check of our reader against the reference Python library on corrupted files.

    python differential.py generate DIR   # corrupt variants of reference.safetensors + python_verdicts.json
    SAFETENSORS_DIFF_DIR=DIR swift test --filter SafeTensorsTests.InteropTests/testDifferentialVerdicts
    python differential.py compare DIR    # lists every file where the two readers disagree

A verdict is "ok" (the file loads) or "error". Our reader is run with allowingUnsupportedDTypes
so that dtype support does not count as a disagreement.
"""
import json
import os
import sys


def variants(valid):
    header_end = 8 + int.from_bytes(valid[:8], "little")
    for length in range(len(valid)):
        yield f"trunc_{length:05d}", valid[:length]
    for position in range(header_end):
        for mask in (0x01, 0x04, 0x20, 0x80):
            data = bytearray(valid)
            data[position] ^= mask
            yield f"flip_{position:05d}_{mask:02x}", bytes(data)
    header = valid[8:header_end].decode("utf-8")
    crafted = {
        "dup_key": header.replace('"indices"', '"scale"', 1),
        "leading_space": " " + header.rstrip(" "),
        "no_padding": header.rstrip(" "),
        "tab_padding": header.rstrip(" ") + "\t" * (len(header) - len(header.rstrip(" "))),
        "nul_padding": header.rstrip(" ") + "\0" * (len(header) - len(header.rstrip(" "))),
        "extra_field": header.replace('"dtype":"F32"', '"dtype":"F32","extra":1', 1),
        "metadata_null": header.replace('"__metadata__":{', '"__metadata__":null,"x":{', 1),
        "float_offset": header.replace('"data_offsets":[0,8]', '"data_offsets":[0.0,8]', 1),
    }
    for name, text in crafted.items():
        encoded = text.encode("utf-8")
        yield f"crafted_{name}", len(encoded).to_bytes(8, "little") + encoded + valid[header_end:]


def main():
    mode, directory = sys.argv[1], sys.argv[2]
    if mode == "generate":
        from safetensors.numpy import load

        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "reference.safetensors"), "rb") as f:
            valid = f.read()
        os.makedirs(directory, exist_ok=True)
        verdicts = {}
        for name, data in variants(valid):
            with open(os.path.join(directory, name + ".safetensors"), "wb") as f:
                f.write(data)
            try:
                load(data)
                verdicts[name] = "ok"
            except Exception as error:  # the library raises SafetensorError and others
                verdicts[name] = "error: " + str(error).splitlines()[0][:120]
        with open(os.path.join(directory, "python_verdicts.json"), "w") as f:
            json.dump(verdicts, f, indent=0, sort_keys=True)
        print(f"{len(verdicts)} files, {sum(v == 'ok' for v in verdicts.values())} accepted by python")
    elif mode == "compare":
        with open(os.path.join(directory, "python_verdicts.json")) as f:
            python = json.load(f)
        with open(os.path.join(directory, "swift_verdicts.json")) as f:
            swift = json.load(f)
        disagreements = 0
        for name in sorted(python):
            p_ok = python[name] == "ok"
            s_ok = swift.get(name) == "ok"
            if p_ok != s_ok:
                disagreements += 1
                print(f"{name}: python {python[name]!r} / swift {swift.get(name)!r}")
        print(f"{len(python)} files, {disagreements} disagreements")
        return 1 if disagreements else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
