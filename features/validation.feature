@validation
Feature: Bad requests are refused and change nothing
  People, scripts and other programs talk to vman over HTTP, and some of what
  they send is wrong: JSON cut off half-way, a missing or misspelt field, a key
  given twice, text where a number belongs, a size of minus one or of a
  trillion gigabytes, a name that would reach into another folder or smuggle
  options into QEMU's command line, a control character, a key that could
  poison every object in vman, an id that does not exist or that tries to climb
  out of vman's folders, a method a path does not take, a URL of a hundred
  thousand characters, a missing API token, an action the VM's state does not
  allow.

  vman refuses each of them with one status and a problem report (RFC 9457,
  application/problem+json) whose detail names the field, key, id, path or
  rule at fault: 400 for a malformed request, 401 for a missing or wrong API
  token, 404 for something that does not exist, 405 (with an Allow header) for
  a method the path does not take, 409 for what the current state forbids, 413
  for a body larger than vman reads, 414 for a URL longer than vman reads, 415
  for a body that is not sent as JSON. HEAD is answered as GET is, without a
  body; OPTIONS on a path vman serves is answered with 204 and the methods of
  the path in Allow.

  A refused request changes nothing: every table of the database file (read
  with sqlite3, not vman's driver), every file of the storage folder (by path,
  size and SHA-256) and the QEMU processes under it are compared before and
  after; the objects of the process vman runs in too, where a body could
  reach them.

  Requests that conflict and arrive at the same moment (two starts of one VM,
  a start and a delete, one disk attached to two VMs, two creates of one name)
  end with exactly one winner, and the database, the QEMU processes, QMP and
  the files agree on the outcome.

  Only the scenarios tagged @integration start VMs on purpose; the rest need
  no QEMU, and each of their rows takes milliseconds once vman is up.

  Background:
    Given vman is running on this host

  Rule: Every refusal below changes one thing in a request that vman accepts

    Scenario Outline: The request to create a <kind> that the refusals start from is accepted
      When the operator asks to create a <kind> with the request every refusal below starts from
      Then the request is accepted with status 201

      Examples:
        | kind     |
        | template |
        | VM       |
        | disk     |

    Scenario Outline: A template whose <field> is <value> is accepted: <why>
      When the operator asks to create a template whose <field> is <value>
      Then the request is accepted with status 201

      Examples:
        | field       | value                 | why                                                     |
        | name        | "Tiny-2.0_b"          | upper case, digits, ".", "_" and "-" make a name        |
        | name        | 63 letters            | the longest name                                        |
        | kernel_path | the file "vm=linuz"   | "=" in a path is passed to QEMU as it is (see below)    |
        | kernel_path | the file "vm:linuz"   | ":" in a path is passed to QEMU as it is (see below)    |
        | initrd_path | the file "initrd.img" | an initrd beside the kernel                             |
        | cmdline     | "console=ttyS0,115200" | a comma in the kernel command line is the kernel's own |

    Scenario: A template with a base image that the refusals below start from is accepted
      When the operator asks to create a template whose base image in qcow2 is the file "root.qcow2"
      Then the request is accepted with status 201

  Rule: Creating a template takes one JSON object with a valid name, CPU count, memory size and boot files

    Scenario Outline: Creating a template from <body> is refused: <why>
      When the operator sends <body> to create a template
      Then the request is refused with status 400
      And the answer is a problem whose detail says <says>
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | body                        | why                          | says                                           |
        | {"name": "tiny", "cpus": 1  | the JSON is cut off          | "the body is not valid JSON"                   |
        | {'name': 'tiny', 'cpus': 1} | single quotes are not JSON   | "the body is not valid JSON"                   |
        | {"name": "tiny",}           | a trailing comma is not JSON | "the body is not valid JSON"                   |
        | ["tiny", 1, 256]            | a list, not an object        | "the body must be a JSON object, not a list"   |
        | "tiny"                      | a string, not an object      | "the body must be a JSON object, not text"     |
        | 42                          | a number, not an object      | "the body must be a JSON object, not a whole"  |
        | null                        | null, not an object          | "the body must be a JSON object, not null"     |
        | nothing                     | there is no body at all      | "the body must be a JSON object, not nothing"  |
        | {}                          | every field is missing       | 'the field "name" is missing'                  |

    Scenario Outline: A template whose <field> is <value> is refused: <why>
      When the operator asks to create a template whose <field> is <value>
      Then the request is refused with status 400
      And the answer is a problem that names the field <field>
      And the database, the storage folder and the QEMU processes are as they were before

      Examples: The name
        | field | value             | why                                                        |
        | name  | left out          | every template has a name                                  |
        | name  | ""                | an empty name names nothing                                |
        | name  | 42                | a name is text, not a number                               |
        | name  | null              | a name cannot be null                                      |
        | name  | true              | a name is text, not a truth value                          |
        | name  | ["tiny"]          | a name is text, not a list                                 |
        | name  | "boot/tiny"       | a slash would reach into another folder                    |
        | name  | "tiny..old"       | two dots could climb out of a folder                       |
        | name  | "my tiny"         | names have no spaces                                       |
        | name  | "tiny\u0000"      | NUL ends a string in C, and QEMU is written in C           |
        | name  | "tiny\u0001"      | a control character                                        |
        | name  | "tiny\u0007"      | a bell rings in the terminal of whoever reads the log      |
        | name  | "tiny\u001b[2J"   | an escape sequence would clear the screen of a log reader  |
        | name  | "tiny\u007f"      | DEL is a control character too                             |
        | name  | "tiny\u000a"      | a newline would split a log line or a config file          |
        | name  | "tiny,cache=none" | a comma would smuggle options into QEMU                     |
        | name  | "-tiny"           | a leading dash reads as a command-line option              |
        | name  | ".tiny"           | a leading dot makes a hidden file                          |
        | name  | "tïny"            | names are ASCII letters, digits, ".", "_" and "-"          |
        | name  | "データ"             | names are ASCII: Japanese letters are not                  |
        | name  | "tiny🚀"           | names are ASCII: an emoji is not                           |
        | name  | "tіny"            | names are ASCII: a Cyrillic і looks like i but is not      |
        | name  | "tpl-small"       | a name like a template id would hide the template "small"  |
        | name  | "tpl-mine"        | names starting with "tpl-" are how template ids look       |
        | name  | 64 letters        | one more than the 63 characters a name may have            |
        | name  | 10000 letters     | a very long name                                           |

      Examples: The number of CPUs
        | field | value            | why                               |
        | cpus  | left out         | every template says how many CPUs |
        | cpus  | "2"              | a number in quotes is text        |
        | cpus  | null             | the count cannot be null          |
        | cpus  | true             | a truth value is not a count      |
        | cpus  | [2]              | a list is not a count             |
        | cpus  | -1               | a count cannot be negative        |
        | cpus  | 0                | a VM has at least one CPU         |
        | cpus  | 1.5              | CPUs come whole                   |
        | cpus  | 65               | one more than the 64 allowed      |
        | cpus  | 1e12             | a trillion CPUs                   |
        | cpus  | 9007199254740992 | 2^53, beyond exact whole numbers  |

      Examples: The memory size
        | field     | value            | why                                 |
        | memory_mb | left out         | every template says how much memory |
        | memory_mb | "512"            | a number in quotes is text          |
        | memory_mb | null             | the size cannot be null             |
        | memory_mb | -512             | a size cannot be negative           |
        | memory_mb | 0                | a VM needs memory                   |
        | memory_mb | 63               | one below the 64 MB minimum         |
        | memory_mb | 512.5            | memory comes in whole megabytes     |
        | memory_mb | 1048577          | one more than the 1 TB allowed      |
        | memory_mb | 1e12             | a trillion megabytes                |
        | memory_mb | 9007199254740992 | 2^53, beyond exact whole numbers    |

      Examples: The boot files and the kernel command line
        | field             | value                             | why                                                               |
        | kernel_path       | left out                          | without a kernel or a base image nothing can boot                 |
        | kernel_path       | "vmlinuz"                         | a relative path depends on where vman was started                 |
        | kernel_path       | "/boot/../etc/passwd"             | a path that climbs is not a plain path                            |
        | kernel_path       | "/no/such/vmlinuz"                | the file does not exist                                           |
        | kernel_path       | ""                                | an empty path names no file                                       |
        | kernel_path       | 42                                | a path is text                                                    |
        | kernel_path       | the file "vm,linuz"               | a comma separates options in QEMU's option strings                |
        | kernel_path       | the file "vmlinuz\u0000"          | NUL ends the path where the C library reads it                    |
        | kernel_path       | the file "vmlinuz\u0007"          | a control character in a path                                     |
        | kernel_path       | the file "vmlinuz\u001b"          | an escape character in a path                                     |
        | kernel_path       | the file "vmlinuz\u007f"          | DEL in a path                                                     |
        | initrd_path       | the file "initrd,img"             | QEMU splits -initrd on commas for multiboot kernels               |
        | initrd_path       | the file "initrd\u0000"           | NUL ends the path where the C library reads it                    |
        | initrd_path       | the file "initrd\u0007"           | a control character in a path                                     |
        | initrd_path       | the file "initrd\u001b"           | an escape character in a path                                     |
        | initrd_path       | the file "initrd\u007f"           | DEL in a path                                                     |
        | initrd_path       | "/no/such/initrd"                 | the file does not exist                                           |
        | base_image_path   | "/no/such/root.qcow2"             | the file does not exist (and its format is not said)              |
        | base_image_format | "vmdk"                            | base images are qcow2 or raw                                      |
        | cmdline           | "console=ttyS0\u000ainit=/bin/sh" | a newline in the kernel command line                              |
        | cmdline           | "console=ttyS0\u0000 init=/bin/sh"| NUL would cut the kernel command line short                       |
        | cmdline           | "console=ttyS0\u0007"             | a control character in the kernel command line                    |
        | cmdline           | "console=ttyS0\u001b"             | an escape character in the kernel command line                    |
        | cmdline           | "console=ttyS0\u007f"             | DEL in the kernel command line                                    |
        | cmdline           | 2049 letters                      | one more than the 2048 characters allowed                         |

      Examples: Fields vman does not take
        | field   | value      | why                                      |
        | colour  | "blue"     | an unknown field is refused, not ignored |
        | id      | "tpl-mine" | vman chooses the ids                     |
        | builtin | true       | only vman's own templates are built in   |

    Scenario Outline: A template whose base image (qcow2) is <value> is refused: <why>
      When the operator asks to create a template whose base image in qcow2 is <value>
      Then the request is refused with status 400
      And the answer is a problem that names the field base_image_path
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | value                 | why                                                 |
        | the file "root,qcow2" | a comma separates options in QEMU's option strings  |
        | the file "root\u0000" | NUL ends the path where the C library reads it      |
        | the file "root\u0007" | a control character in a path                       |
        | the file "root\u001b" | an escape character in a path                       |
        | the file "root\u007f" | DEL in a path                                       |
        | "root.qcow2"          | a relative path depends on where vman was started   |
        | "/no/such/root.qcow2" | the file does not exist                             |
        | 42                    | a path is text                                      |

  Rule: Templates take boot files only from vman's image directories

    # QEMU runs with vman's rights: a template naming any file of the host would
    # let a caller read it through a guest.
    Scenario Outline: A template whose <field> is <value> is refused: <why>
      When the operator asks to create a template whose <field> is <value>
      Then the request is refused with status 400
      And the answer is a problem whose detail says "is outside vman's image directories (VMAN_IMAGE_DIRS: "
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | field       | value            | why                                              |
        | kernel_path | "/etc/passwd"    | any file of the host would become a guest's kernel |
        | initrd_path | "/etc/hostname"  | or its initrd                                    |

    Scenario: A template whose base image is a file outside the image directories is refused
      When the operator asks to create a template whose base image in qcow2 is "/etc/passwd"
      Then the request is refused with status 400
      And the answer is a problem whose detail says "base_image_path /etc/passwd is outside vman's image directories"
      And the database, the storage folder and the QEMU processes are as they were before

  Rule: Creating a VM takes one JSON object with a valid name and a template

    Scenario Outline: Creating a VM from <body> is refused: <why>
      When the operator sends <body> to create a VM
      Then the request is refused with status 400
      And the answer is a problem whose detail says <says>
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | body                                                                    | why                                        | says                                                  |
        | {"name": "web"                                                          | the JSON is cut off                        | "the body is not valid JSON"                          |
        | {"name": "web", "template": "small"}}                                   | a stray brace after the object             | "the body is not valid JSON"                          |
        | {"name": "web", "template": "small"} {}                                 | two objects, one after the other           | "the body is not valid JSON"                          |
        | ["web", "small"]                                                        | a list, not an object                      | "the body must be a JSON object, not a list"          |
        | "web"                                                                   | a string, not an object                    | "the body must be a JSON object, not text"            |
        | 42                                                                      | a number, not an object                    | "the body must be a JSON object, not a whole number"  |
        | true                                                                    | a truth value, not an object               | "the body must be a JSON object, not true"            |
        | nothing                                                                 | there is no body at all                    | "the body must be a JSON object, not nothing"         |
        | {}                                                                      | every field is missing                     | 'the field "name" is missing'                         |
        | {"name": "web", "template": {"__proto__": {"polluted": true}}}          | a __proto__ key deeper in the body         | 'the key "__proto__"'                                 |
        | {"name": "web", "template": "small", "\u006eame": "db"}                 | an escaped "name" is the key "name" again  | 'the key "name" twice'                                |

    Scenario Outline: A VM whose <field> is <value> is refused: <why>
      When the operator asks to create a VM whose <field> is <value>
      Then the request is refused with status 400
      And the answer is a problem that names the field <field>
      And the database, the storage folder and the QEMU processes are as they were before

      Examples: The name
        | field | value             | why                                                   |
        | name  | left out          | every VM has a name                                   |
        | name  | ""                | an empty name names nothing                           |
        | name  | 42                | a name is text, not a number                          |
        | name  | null              | a name cannot be null                                 |
        | name  | ["web"]           | a name is text, not a list                            |
        | name  | "web/1"           | a slash would reach into another folder               |
        | name  | "web..1"          | two dots could climb out of a folder                  |
        | name  | ".."              | two dots alone are the folder above                   |
        | name  | "my web"          | names have no spaces                                  |
        | name  | "web\u0000"       | NUL ends a string in C, and QEMU is written in C      |
        | name  | "web\u0001"       | a control character                                   |
        | name  | "web\u0007"       | a bell rings in the terminal of whoever reads the log |
        | name  | "web\u001b[2J"    | an escape sequence would clear a log reader's screen  |
        | name  | "web\u007f"       | DEL is a control character too                        |
        | name  | "web\u000a"       | a newline would split a log line or a config file     |
        | name  | "web,readonly=on" | a comma would smuggle options into QEMU               |
        | name  | "web=1"           | "=" gives an option its value in QEMU                 |
        | name  | "web:1"           | ":" starts a protocol in QEMU's file names            |
        | name  | "-web"            | a leading dash reads as a command-line option         |
        | name  | ".web"            | a leading dot makes a hidden file                     |
        | name  | "wéb"             | names are ASCII letters, digits, ".", "_" and "-"     |
        | name  | "データ"             | names are ASCII: Japanese letters are not             |
        | name  | "web🚀"            | names are ASCII: an emoji is not                      |
        | name  | "wеb"             | names are ASCII: a Cyrillic е looks like e but is not |
        | name  | 64 letters        | one more than the 63 characters a name may have       |
        | name  | 10000 letters     | a very long name                                      |

      Examples: The template
        | field    | value          | why                                    |
        | template | left out       | every VM is made from a template       |
        | template | ""             | an empty reference names no template   |
        | template | 42             | a reference is text                    |
        | template | null           | the reference cannot be null           |
        | template | ["small"]      | one template, not a list               |
        | template | "small\u0000"  | NUL is in no template id or name       |
        | template | "small\u0007"  | a control character names no template |
        | template | "small\u001b"  | an escape character names no template  |
        | template | "small\u007f"  | DEL names no template                  |
        | template | 300 letters    | longer than any template id or name    |

      Examples: Fields vman does not take
        | field  | value     | why                                      |
        | colour | "blue"    | an unknown field is refused, not ignored |
        | id     | "vm-mine" | vman chooses the ids                     |
        | state  | "running" | a new VM is created, not running         |
        | cpus   | 8         | the template says how many CPUs          |

  Rule: Creating a disk takes one JSON object with a valid name and a whole number of gigabytes

    Scenario Outline: Creating a disk from <body> is refused: <why>
      When the operator sends <body> to create a disk
      Then the request is refused with status 400
      And the answer is a problem whose detail says <says>
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | body                      | why                     | says                                                 |
        | {"name": "data", "size_gb | the JSON is cut off     | "the body is not valid JSON"                         |
        | [{"name": "data"}]        | a list, not an object   | "the body must be a JSON object, not a list"         |
        | "data"                    | a string, not an object | "the body must be a JSON object, not text"           |
        | 10                        | a number, not an object | "the body must be a JSON object, not a whole number" |
        | null                      | null, not an object     | "the body must be a JSON object, not null"           |
        | nothing                   | there is no body at all | "the body must be a JSON object, not nothing"        |
        | {}                        | every field is missing  | 'the field "name" is missing'                        |

    # Names with a slash, two dots, a space or a comma, and sizes of 0, -1,
    # 1.5, "ten" and 1025 are in disks.feature.
    Scenario Outline: A disk whose <field> is <value> is refused: <why>
      When the operator asks to create a disk whose <field> is <value>
      Then the request is refused with status 400
      And the answer is a problem that names the field <field>
      And the database, the storage folder and the QEMU processes are as they were before

      Examples: The name
        | field | value          | why                                                   |
        | name  | left out       | every disk has a name                                 |
        | name  | ""             | an empty name names nothing                           |
        | name  | 42             | a name is text, not a number                          |
        | name  | null           | a name cannot be null                                 |
        | name  | "data\u0000"   | NUL ends a string in C, and QEMU is written in C      |
        | name  | "data\u0001"   | a control character                                   |
        | name  | "data\u0007"   | a bell rings in the terminal of whoever reads the log |
        | name  | "data\u001b[2J"| an escape sequence would clear a log reader's screen  |
        | name  | "data\u007f"   | DEL is a control character too                        |
        | name  | "data\u000a"   | a newline would split a log line or a config file     |
        | name  | "data=1"       | "=" gives an option its value in QEMU                 |
        | name  | "data:1"       | ":" starts a protocol in QEMU's file names            |
        | name  | "-data"        | a leading dash reads as a command-line option         |
        | name  | ".data"        | a leading dot makes a hidden file                     |
        | name  | "dätä"         | names are ASCII letters, digits, ".", "_" and "-"     |
        | name  | "データ"          | names are ASCII: Japanese letters are not             |
        | name  | "data🚀"        | names are ASCII: an emoji is not                      |
        | name  | "dаta"         | names are ASCII: a Cyrillic а looks like a but is not |
        | name  | 64 letters     | one more than the 63 characters a name may have       |
        | name  | 10000 letters  | a very long name                                      |

      Examples: The size
        | field   | value            | why                              |
        | size_gb | left out         | every disk has a size            |
        | size_gb | null             | the size cannot be null          |
        | size_gb | true             | a truth value is not a size      |
        | size_gb | [1]              | a list is not a size             |
        | size_gb | 1e12             | a trillion gigabytes             |
        | size_gb | 9007199254740992 | 2^53, beyond exact whole numbers |

      Examples: The format and fields vman does not take
        | field  | value             | why                                       |
        | format | "raw"             | disks are qcow2                           |
        | format | "QCOW2"           | formats are written in lower case         |
        | format | null              | the format is qcow2 or left out, not null |
        | colour | "blue"            | an unknown field is refused, not ignored  |
        | path   | "/etc/passwd"     | vman decides where disk files go          |
        | vm_id  | "vm-000000000000" | a disk is attached by its own request     |

  Rule: Attaching a disk takes one JSON object that names the VM

    Scenario Outline: Attaching a disk with <body> is refused: <why>
      Given a VM "db" created from the small template
      And a 1 GB disk "data"
      When the operator sends <body> to attach the disk "data" to "db"
      Then the request is refused with status 400
      And the answer is a problem whose detail says <says>
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | body                | why                     | says                                                 |
        | {"vm_id": "vm-      | the JSON is cut off     | "the body is not valid JSON"                         |
        | ["vm-000000000000"] | a list, not an object   | "the body must be a JSON object, not a list"         |
        | "vm-000000000000"   | a string, not an object | "the body must be a JSON object, not text"           |
        | 42                  | a number, not an object | "the body must be a JSON object, not a whole number" |
        | null                | null, not an object     | "the body must be a JSON object, not null"           |
        | nothing             | there is no body at all | "the body must be a JSON object, not nothing"        |
        | {}                  | the VM is missing       | 'the field "vm_id" is missing'                       |

    Scenario Outline: Attaching a disk in a request whose <field> is <value> is refused: <why>
      Given a VM "db" created from the small template
      And a 1 GB disk "data"
      When the operator asks to attach the disk "data" to "db" in a request whose <field> is <value>
      Then the request is refused with status 400
      And the answer is a problem that names the field <field>
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | field       | value                | why                                                |
        | vm_id       | left out             | the request names the VM                           |
        | vm_id       | ""                   | an empty id names nothing                          |
        | vm_id       | 42                   | an id is text                                      |
        | vm_id       | null                 | the id cannot be null                              |
        | vm_id       | true                 | a truth value is not an id                         |
        | vm_id       | ["vm-1"]             | one VM, not a list                                 |
        | vm_id       | "vm-00000000\u0000"  | NUL is in no id vman hands out                     |
        | vm_id       | "vm-00000000\u0007"  | a control character is in no id vman hands out     |
        | vm_id       | "vm-00000000\u001b"  | an escape character is in no id vman hands out     |
        | vm_id       | "vm-00000000\u007f"  | DEL is in no id vman hands out                     |
        | vm_id       | 300 letters          | longer than any id vman hands out                  |
        | mount_point | "/dev/vdb"           | the guest names the device; vman does not take one |
        | readonly    | true                 | an unknown field is refused, not ignored           |

  Rule: Stopping a VM takes at most one option, force, which is true or false

    Scenario Outline: Stopping a VM with <body> is refused: <why>
      Given a VM "db" created from the small template
      When the operator sends <body> to stop the VM "db"
      Then the request is refused with status 400
      And the answer is a problem whose detail says <says>
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | body              | why                          | says                                                         |
        | {"force": tru     | the JSON is cut off          | "the body is not valid JSON"                                 |
        | [{"force": true}] | a list, not an object        | "the body must be a JSON object or null, not a list"         |
        | "force"           | a string, not an object      | "the body must be a JSON object or null, not text"           |
        | 1                 | a number, not an object      | "the body must be a JSON object or null, not a whole number" |
        | true              | a truth value, not an object | "the body must be a JSON object or null, not true"           |

    Scenario Outline: Stopping a VM in a request whose <field> is <value> is refused: <why>
      Given a VM "db" created from the small template
      When the operator asks to stop the VM "db" in a request whose <field> is <value>
      Then the request is refused with status 400
      And the answer is a problem that names the field <field>
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | field   | value  | why                                       |
        | force   | "yes"  | force is true or false                    |
        | force   | "true" | true in quotes is text                    |
        | force   | 1      | a number is not a truth value             |
        | force   | null   | force is true or false, or left out       |
        | force   | [true] | a list is not a truth value               |
        | timeout | 30     | an unknown option is refused, not ignored |

    Scenario Outline: Stopping a VM with the query <query> is refused: <why>
      Given a VM "db" created from the small template
      When the operator asks to stop the VM "db" with the query <query>
      Then the request is refused with status 400
      And the answer is a problem that names the field <field>
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | query            | field | why                                       |
        | force=maybe      | force | force is true or false                    |
        | force=1          | force | force is spelt true or false              |
        | force=true&now=1 | now   | an unknown option is refused, not ignored |

  Rule: An action that takes no options refuses a body that gives some

    Scenario Outline: <body> sent to <request> is refused: <why>
      Given a VM "db" created from the small template
      And a 1 GB disk "data"
      When the operator sends <body> to <request>
      Then the request is refused with status 400
      And the answer is a problem whose detail says <says>
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | request                | body                         | why                                                      | says                                                  |
        | start the VM "db"      | {"force": true}              | start has no options: a forced start would be a guess    | 'the field "force" is unknown'                        |
        | start the VM "db"      | {"cpus": 4}                  | the template, not the start, says how many CPUs          | 'the field "cpus" is unknown'                         |
        | start the VM "db"      | {"force": tr                 | the JSON is cut off                                      | "the body is not valid JSON"                          |
        | restart the VM "db"    | {"force": true}              | a caller asking for a hard reset must not get a soft one | 'the field "force" is unknown'                        |
        | restart the VM "db"    | []                           | a list, not an object                                    | "the body must be a JSON object or null, not a list"  |
        | detach the disk "data" | {"vm_id": "vm-000000000000"} | a disk is detached from the VM it is attached to         | 'the field "vm_id" is unknown'                        |

  Rule: A key that could poison vman's objects, or a key given twice, is refused wherever a body is read

    # JSON.parse keeps "__proto__" as a plain key, but code that copies such a
    # body into another object sets that object's prototype; "constructor" and
    # "prototype" reach Object.prototype through a merge. vman takes no such key.
    Scenario Outline: The key <key> in a request to <request> is refused
      Given a VM "db" created from the small template
      And a 1 GB disk "data"
      When the operator sends a request to <request> whose body also has the key <key>
      Then the request is refused with status 400
      And the answer is a problem that names the key <key>
      And no object in vman's process has gained a property
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | request                      | key         |
        | create a template            | __proto__   |
        | create a template            | constructor |
        | create a template            | prototype   |
        | create a VM                  | __proto__   |
        | create a VM                  | constructor |
        | create a VM                  | prototype   |
        | create a disk                | __proto__   |
        | create a disk                | constructor |
        | create a disk                | prototype   |
        | attach the disk "data" to "db" | __proto__   |
        | attach the disk "data" to "db" | constructor |
        | attach the disk "data" to "db" | prototype   |
        | stop the VM "db"             | __proto__   |
        | stop the VM "db"             | constructor |
        | stop the VM "db"             | prototype   |
        | start the VM "db"            | __proto__   |
        | start the VM "db"            | constructor |
        | start the VM "db"            | prototype   |
        | restart the VM "db"          | __proto__   |
        | restart the VM "db"          | constructor |
        | restart the VM "db"          | prototype   |
        | detach the disk "data"       | __proto__   |
        | detach the disk "data"       | constructor |
        | detach the disk "data"       | prototype   |

    # JSON readers disagree about {"name": "a", "name": "b"}: JavaScript keeps
    # the last, others the first or refuse. What vman would act on must not
    # depend on which reader a proxy or a client library used.
    Scenario Outline: The key <key> given twice in a request to <request> is refused: <why>
      Given a VM "db" created from the small template
      And a 1 GB disk "data"
      When the operator sends a request to <request> whose key <key> is given twice, the second time as <second>
      Then the request is refused with status 400
      And the answer is a problem that names the key <key>
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | request                        | key         | second   | why                                           |
        | create a template              | name        | "other"  | the template would be named after one of them |
        | create a template              | cpus        | 64       | one CPU or sixty-four                         |
        | create a template              | kernel_path | "/bin"   | the second is not even a file                 |
        | create a VM                    | name        | "db2"    | the VM would be named after one of them       |
        | create a VM                    | name        | "web"    | even the same value twice is refused          |
        | create a VM                    | template    | "medium" | one template or the other                     |
        | create a disk                  | name        | "other"  | the disk would be named after one of them     |
        | create a disk                  | size_gb     | 2        | one size or the other                         |
        | attach the disk "data" to "db" | vm_id       | "vm-x"   | one VM or the other                           |
        | stop the VM "db"               | force       | false    | a forced stop or a clean one                  |

  Rule: Names are ASCII, and names that differ only in case are different names

    # Non-ASCII names are refused above, with every other name rule, for
    # templates, VMs and disks alike. Folders and files are named by id, so
    # "Web" and "web" never meet on a file system that ignores case.
    Scenario Outline: A <kind> "Web" and a <kind> "web" are two <kind>s
      When the operator creates a <kind> "Web" and then a <kind> "web"
      Then both were accepted with status 201
      And the database records the <kind>s "Web" and "web" under different ids
      And the storage folder gained what the <kind>s "Web" and "web" have, and nothing else

      Examples:
        | kind     |
        | template |
        | VM       |
        | disk     |

    Scenario: A template is found by its own name, not by the name that differs only in case
      Given a template "Tiny" that is not built in
      And a template "tiny" that is not built in
      When a VM "web" is created from the Tiny template
      Then the database records "web" as made from the template "Tiny"

  Rule: The same create sent twice at the same moment makes one

    Scenario Outline: Two creates of a <kind> "twin" at the same moment make one <kind>
      When the request to create a <kind> "twin" is sent twice at the same moment
      Then one create succeeded and the other was refused with status 409
      And the database records one <kind> named "twin", the one whose create succeeded
      And the storage folder gained what the <kind> "twin" has, and nothing for the refused create

      Examples:
        | kind     |
        | template |
        | VM       |
        | disk     |

  Rule: An id that names nothing is answered with 404, and never reaches the file system

    Scenario Outline: Asking to <action> the <kind> with the id <id> is answered with 404
      Given a VM "db" created from the small template
      And files where the id <id> would lead from vman's folders
      When the operator asks to <action> the <kind> with the id <id>
      Then the request is refused with status 404
      And the answer is a problem that quotes the id <id>
      And the database, the storage folder and the QEMU processes are as they were before
      And the files where the id <id> would lead are untouched

      # Well-formed disk ids that were never handed out are in disks.feature.
      Examples: Ids that vman never handed out
        | action  | kind     | id                 |
        | look up | template | "tpl-000000000000" |
        | delete  | template | "tpl-000000000000" |
        | look up | VM       | "vm-000000000000"  |
        | delete  | VM       | "vm-000000000000"  |
        | start   | VM       | "vm-000000000000"  |
        | stop    | VM       | "vm-000000000000"  |
        | restart | VM       | "vm-000000000000"  |

      Examples: Ids that climb out of vman's folders, sent in one path segment
        | action         | kind     | id                 |
        | look up        | template | "../../etc/passwd" |
        | delete         | template | "../../etc/passwd" |
        | look up        | VM       | "../../etc/passwd" |
        | delete         | VM       | "../../etc/passwd" |
        | start          | VM       | "../../etc/passwd" |
        | stop           | VM       | "../../etc/passwd" |
        | restart        | VM       | "../../etc/passwd" |
        | look up        | disk     | "../../etc/passwd" |
        | delete         | disk     | "../../etc/passwd" |
        | attach to "db" | disk     | "../../etc/passwd" |
        | detach         | disk     | "../../etc/passwd" |
        | delete         | VM       | "../disks"         |
        | delete         | disk     | "../vms/x"         |

      Examples: Two dots as the whole path segment, as curl --path-as-is sends them
        | action         | kind     | id   |
        | look up        | template | ".." |
        | delete         | template | ".." |
        | look up        | VM       | ".." |
        | delete         | VM       | ".." |
        | start          | VM       | ".." |
        | stop           | VM       | ".." |
        | restart        | VM       | ".." |
        | look up        | disk     | ".." |
        | delete         | disk     | ".." |
        | attach to "db" | disk     | ".." |
        | detach         | disk     | ".." |

    Scenario Outline: Asking to <action> the <kind> with the id <id> is refused with 400: <why>
      Given a VM "db" created from the small template
      And files where the id <id> would lead from vman's folders
      When the operator asks to <action> the <kind> with the id <id>
      Then the request is refused with status 400
      And the answer is a problem that names the field id
      And the database, the storage folder and the QEMU processes are as they were before
      And the files where the id <id> would lead are untouched

      Examples: Ids longer than any vman hands out
        | action  | kind     | id          | why                                 |
        | look up | VM       | 200 letters | longer than any id vman hands out   |
        | look up | template | 300 letters | longer than any template id or name |
        | delete  | template | 300 letters | longer than any template id or name |
        | look up | VM       | 300 letters | longer than any id vman hands out   |
        | delete  | VM       | 300 letters | longer than any id vman hands out   |
        | start   | VM       | 300 letters | longer than any id vman hands out   |
        | look up | disk     | 300 letters | longer than any id vman hands out   |
        | delete  | disk     | 300 letters | longer than any id vman hands out   |

      Examples: Control characters in the id, sent as %00, %07, %1B and %7F
        | action         | kind     | id                    | why                                |
        | look up        | template | "tpl-small\u0000"     | NUL ends the id where C reads it   |
        | delete         | template | "tpl-small\u0007"     | a control character is in no id    |
        | look up        | VM       | "vm-000000000000\u0000" | NUL ends the id where C reads it |
        | delete         | VM       | "vm-000000000000\u0000" | NUL ends the id where C reads it |
        | start          | VM       | "vm-000000000000\u0007" | a control character is in no id  |
        | stop           | VM       | "vm-000000000000\u001b" | an escape character is in no id  |
        | restart        | VM       | "vm-000000000000\u007f" | DEL is in no id                  |
        | look up        | disk     | "disk-00000000\u0000" | NUL ends the id where C reads it   |
        | delete         | disk     | "disk-00000000\u0000" | NUL ends the id where C reads it   |
        | attach to "db" | disk     | "disk-00000000\u0007" | a control character is in no id    |
        | detach         | disk     | "disk-00000000\u001b" | an escape character is in no id    |

    Scenario Outline: Creating a VM from the template <template> is answered with 404: <why>
      When the operator asks to create a VM whose template is <template>
      Then the request is refused with status 404
      And the answer is a problem that quotes the template <template>
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | template           | why                                           |
        | "huge"             | no template has that name                     |
        | "tpl-000000000000" | no template has that id                       |
        | "../../etc/passwd" | a path is not a template                      |
        | "SMALL"            | names differ by case: "small" is another name |

  Rule: What vman does not serve, or cannot read, is answered with one status and a problem

    Scenario Outline: <what> is answered with 404
      When the operator sends a <method> request to <path>
      Then the request is refused with status 404
      And the answer is a problem that names the path <path>
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | what                                    | method  | path                     |
        | A path vman does not serve              | GET     | /api/v1/volumes          |
        | An API version that does not exist      | GET     | /api/v2/vms              |
        | A path outside the API                  | GET     | /admin                   |
        | A path that climbs out of the API       | GET     | /api/v1/../../etc/passwd |
        | A path vman does not serve, any method  | DELETE  | /api/v1/volumes          |
        | OPTIONS on a path vman does not serve   | OPTIONS | /api/v1/volumes          |
        | An action vman does not have            | POST    | /api/v1/vms/x/explode    |

    Scenario: A path with broken percent-encoding is refused with 400
      When the operator sends a GET request to /api/v1/vms/%zz
      Then the request is refused with status 400
      And the answer is a problem whose detail says "not valid percent-encoding"
      And the database, the storage folder and the QEMU processes are as they were before

    # Fastify has no 405 of its own: vman looks up the methods a path takes.
    Scenario Outline: <what> is answered with 405 and the methods the path takes
      When the operator sends a <method> request to <path>
      Then the request is refused with status 405
      And the Allow header of the answer lists <allowed>
      And the answer is a problem that names the methods <allowed>
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | what                                  | method | path                              | allowed                     |
        | Replacing every VM at once            | PUT    | /api/v1/vms                       | GET, HEAD, POST, OPTIONS    |
        | Deleting every VM at once             | DELETE | /api/v1/vms                       | GET, HEAD, POST, OPTIONS    |
        | Deleting every disk at once           | DELETE | /api/v1/disks                     | GET, HEAD, POST, OPTIONS    |
        | Changing a template in place          | PATCH  | /api/v1/templates/tpl-small       | GET, HEAD, DELETE, OPTIONS  |
        | Replacing a VM                        | PUT    | /api/v1/vms/vm-000000000000       | GET, HEAD, DELETE, OPTIONS  |
        | Starting a VM with GET                | GET    | /api/v1/vms/vm-000000000000/start | POST, OPTIONS               |
        | Deleting a disk's attachment          | DELETE | /api/v1/disks/disk-x/attach       | POST, OPTIONS               |
        | Changing the network configuration    | PUT    | /api/v1/network                   | GET, HEAD, OPTIONS          |
        | Running the observer with GET         | GET    | /api/v1/observer/check            | POST, OPTIONS               |
        | Deleting the observer's report        | DELETE | /api/v1/observer/report           | GET, HEAD, OPTIONS          |
        | Posting to the health check           | POST   | /health                           | GET, HEAD, OPTIONS          |

    Scenario Outline: HEAD <path> is answered as GET is, without a body
      When the operator sends a HEAD request to <path>
      Then the answer has the status, content type and length of the answer to GET <path>, and no body

      Examples:
        | path                           |
        | /health                        |
        | /api/v1/vms                    |
        | /api/v1/templates/tpl-small    |
        | /api/v1/templates/small        |
        | /api/v1/openapi.json           |
        | /api/v1/network                |
        | /api/v1/vms/vm-000000000000    |

    Scenario Outline: OPTIONS <path> is answered with 204 and the methods the path takes
      When the operator sends an OPTIONS request to <path>
      Then the request is answered with status 204 and no body
      And the Allow header of the answer lists <allowed>

      Examples:
        | path                              | allowed                     |
        | /api/v1/vms                       | GET, HEAD, POST, OPTIONS    |
        | /api/v1/vms/vm-000000000000       | GET, HEAD, DELETE, OPTIONS  |
        | /api/v1/vms/vm-000000000000/start | POST, OPTIONS               |
        | /api/v1/templates                 | GET, HEAD, POST, OPTIONS    |
        | /api/v1/disks/disk-x/detach       | POST, OPTIONS               |
        | /health                           | GET, HEAD, OPTIONS          |

    Scenario Outline: A <request> request sent as <content type> is refused with 415
      Given a VM "db" created from the small template
      And a 1 GB disk "data"
      When the operator sends the well-formed request to <request> with the content type <content type>
      Then the request is refused with status 415
      And the answer is a problem whose detail says "<content type>"
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | request                        | content type                      |
        | create a VM                    | text/plain                        |
        | create a VM                    | application/x-www-form-urlencoded |
        | create a VM                    | application/xml                   |
        | create a VM                    | multipart/form-data; boundary=x   |
        | create a VM                    | application/json-patch+json       |
        | create a VM                    | application/problem+json          |
        | create a template              | text/plain                        |
        | create a disk                  | text/plain                        |
        | attach the disk "data" to "db" | text/plain                        |
        | stop the VM "db"               | text/plain                        |
        | start the VM "db"              | text/plain                        |

    Scenario: A body larger than vman reads is refused without being read
      When the operator asks to create a VM whose name is 100000 letters
      Then the request is refused with status 413
      And the answer is a problem whose detail says "larger than the 65536 bytes vman reads"
      And the database, the storage folder and the QEMU processes are as they were before

    # Node reads at most 16 KB of request line and headers; vman answers a
    # longer request line with a problem of its own. A path segment longer
    # than 8192 characters (and shorter than that) is too long for the router.
    Scenario Outline: A URL of <length> characters is refused with 414: <why>
      When the operator asks for <path> followed by <length> letters
      Then the request is refused with status 414
      And the answer is a problem whose detail says "longer than"
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | path             | length | why                                                       |
        | /api/v1/vms/     | 10000  | an id longer than the 8192 characters the router reads    |
        | /api/v1/vms/     | 20000  | a request line longer than the 16 KB Node reads           |
        | /api/v1/vms/     | 100000 | a request line six times longer than the 16 KB Node reads |
        | /api/v1/vms?name= | 20000 | a query string longer than the 16 KB Node reads           |

  Rule: With an API token set, every request but the health and readiness checks and the OpenAPI document needs it

    Background:
      Given a template "tiny" that is not built in
      And a VM "db" created from the small template
      And a 1 GB disk "data"
      And vman requires the API token "s3cret"

    Scenario Outline: Every request vman serves is refused with 401 <credentials>: <why>
      When the operator sends every request vman serves <credentials>
      Then every answer but those of the health check, the readiness check and the OpenAPI document is a 401 problem with a Bearer challenge
      And the health check answered with status 200
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | credentials                                 | why                                          |
        | without an Authorization header             | no token at all                              |
        | with the Authorization "Bearer wrong"       | a wrong token                                |
        | with the Authorization "Bearer S3CRET"      | tokens are compared exactly, case included   |
        | with the Authorization "Bearer s3cre"       | the start of the token is not the token      |
        | with the Authorization "Bearer s3cret0"     | the token and more is not the token          |
        | with the Authorization "Bearer "            | an empty token                               |
        | with the Authorization "Basic s3cret"       | vman takes Bearer tokens, not Basic          |
        | with the Authorization "s3cret"             | the token without its scheme                 |

    Scenario: With the token, vman serves its OpenAPI document and its lists
      When the operator reads vman's OpenAPI document and every list with the token "s3cret"
      Then none of them was refused with status 401

  Rule: "=" and ":" in a template's file paths are passed to QEMU as they are

    # A comma is refused above (it separates options in QEMU's option strings).
    # "=" and ":" are ordinary characters of a file name, and QEMU gets each
    # file as a whole argument (-kernel, -initrd) or as the backing file of the
    # VM's root disk, so the VM boots from exactly the files the template names.
    @integration
    Scenario Outline: A VM made from files in a folder named <folder> boots from exactly those files
      Given the test guest's kernel and initrd and a base image in a folder named <folder>
      And a template "odd" of those files
      When a VM "web" is created from the odd template
      And the VM "web" is started
      Then the request is accepted with status 200
      And QEMU of "web" was given exactly the kernel and the initrd in the folder <folder>
      And QMP shows the root disk of "web" backed by exactly the base image in the folder <folder>

      Examples:
        | folder        | why                                               |
        | "boot=files"  | "=" gives an option its value in QEMU             |
        | "boot:files"  | ":" separates a protocol from a file name in QEMU |

  Rule: What the state of a VM or template forbids is refused with 409 and changes nothing

    Scenario Outline: <refusal> is refused
      Given a template "tiny" that is not built in
      And a VM "db" created from the tiny template
      When the operator tries to <request>
      Then the request is refused with status 409
      And the answer is a problem whose detail says <says>
      And the database, the storage folder and the QEMU processes are as they were before

      Examples:
        | refusal                                      | request                                  | says                            |
        | Stopping a VM that was never started         | stop the VM "db"                         | "it is created"                 |
        | Restarting a VM that was never started       | restart the VM "db"                      | "it is created"                 |
        | Deleting a built-in template                 | delete the template "small"              | "is built in"                   |
        | Deleting a template a VM was created from    | delete the template "tiny"               | "is used by 1 VM(s)"            |
        | A second VM with a name already in use       | create a VM "db" from the small template | "a VM named db already exists"  |
        | A second template with a name already in use | create a template "tiny"                 | "a template named tiny already" |
        | A template with the name of a built-in one   | create a template "medium"               | "a template named medium"       |

    @integration
    Scenario: A running VM cannot be started again
      Given a running VM "web" from the small template
      When the operator tries to start the VM "web"
      Then the request is refused with status 409
      And the answer is a problem whose detail says "it is running"
      And the database, the storage folder and the QEMU processes are as they were before
      And "web" still runs in the same QEMU process

  Rule: Conflicting requests sent at the same moment have exactly one winner

    @integration
    Scenario: Two starts of one VM at the same moment start it once
      Given a VM "web" created from the small template
      When the VM "web" is started twice at the same moment
      Then one start succeeded and the other was refused with status 409
      And exactly one QEMU process runs "web"
      And the VM "web" is recorded as running
      And the database, QEMU, the guests and the files agree

    # Both wait for the VM's lock. The second request is sent once the first
    # holds it (the database file shows the VM starting, or stopping), so the
    # order is known, not hoped for: a start that holds the lock runs to its
    # end and the forced delete then stops and removes the VM; a start that
    # waits behind a delete finds no VM.
    @integration
    Scenario: A forced delete sent while the VM starts waits for the start, then removes the VM
      Given a VM "web" created from the small template
      When the VM "web" is started, and deleted with force while it is starting
      Then the answers came in the order "start 200, delete 204"
      And the database has no record of "web"
      And no QEMU process of "web" is left
      And the storage folder of "web" is gone

    @integration
    Scenario: A start sent while a forced delete stops the VM finds no VM once the delete is done
      Given a running VM "web" from the small template
      When the VM "web" is deleted with force, and started while it is stopping
      Then the answers came in the order "delete 204, start 404"
      And the database has no record of "web"
      And no QEMU process of "web" is left
      And the storage folder of "web" is gone

    @integration
    Scenario: One disk attached to two running VMs at the same moment goes to exactly one
      Given a running VM "db" from the small template
      And a running VM "replica" from the small template
      And a 1 GB disk "data"
      When the disk "data" is attached to "db" and to "replica" at the same moment
      Then one attach succeeded and the other was refused with status 409
      And the disk "data" is recorded as attached to the VM whose attach succeeded
      And QMP lists the disk "data" on the VM whose attach succeeded and not on the other
      And the database, QEMU, the guests and the files agree
