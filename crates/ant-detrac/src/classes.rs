//! The four UA-DETRAC benchmark classes and the fine-grained vehicle types of the v3
//! annotations, with the documented table that maps one to the other.
//!
//! The original (v1) release labels every target with one of `car`, `bus`, `van`, `others`,
//! the classes of the benchmark (Wen et al., "UA-DETRAC: A new benchmark and protocol for
//! multi-object detection and tracking", CVIU 2020) and of the ANT paper's evaluation.
//! The v3 annotations (`DETRAC-*-Annotations-XML-v3`) refine them into 13 types. We map them
//! back with [`V3_TYPE_TABLE`]:
//!
//! | v3 `vehicle_type` | class    | why |
//! |-------------------|----------|-----|
//! | Sedan, Suv, Taxi, Hatchback, Police | car | passenger cars; the v1 file of MVI_20011 labels the same Suv/Sedan targets `car` |
//! | Bus               | bus      | same class |
//! | Van, MiniVan      | van      | vans and minivans are the v1 `van` class (public v3-to-v1 converters agree) |
//! | Truck-Box-Large, Truck-Box-Med, Truck-Util, Truck-Pickup, Truck-Flatbed | others | v1 `others` holds trucks and other large vehicles |
//!
//! Class indices are 0-based in the model (`car`=0, `bus`=1, `van`=2, `others`=3) and 1-based
//! as COCO category ids (`category_id = index + 1`).

use serde::{Deserialize, Serialize};

/// One of the four UA-DETRAC benchmark classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VehicleClass {
    /// Passenger cars (Sedan, Suv, Taxi, Hatchback, Police).
    Car,
    /// Buses.
    Bus,
    /// Vans and minivans.
    Van,
    /// Trucks and everything else.
    Others,
}

impl VehicleClass {
    /// The number of benchmark classes.
    pub const COUNT: usize = 4;

    /// All classes in index order.
    pub const ALL: [VehicleClass; 4] = [Self::Car, Self::Bus, Self::Van, Self::Others];

    /// The 0-based class index used by the model (`car`=0, `bus`=1, `van`=2, `others`=3).
    pub fn index(self) -> usize {
        match self {
            Self::Car => 0,
            Self::Bus => 1,
            Self::Van => 2,
            Self::Others => 3,
        }
    }

    /// The class with the given 0-based index, if any.
    pub fn from_index(index: usize) -> Option<Self> {
        Self::ALL.get(index).copied()
    }

    /// The COCO category id: `index() + 1`.
    pub fn coco_category_id(self) -> u32 {
        self.index() as u32 + 1
    }

    /// The lowercase name used by the v1 annotations and the benchmark (`car`, `bus`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Car => "car",
            Self::Bus => "bus",
            Self::Van => "van",
            Self::Others => "others",
        }
    }
}

/// The `vehicle_type` of a target: a v1 benchmark class or one of the 13 v3 fine-grained types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VehicleType {
    /// A v1 (original schema) label: already one of the four classes.
    Coarse(VehicleClass),
    /// v3 `Sedan`.
    Sedan,
    /// v3 `Suv`.
    Suv,
    /// v3 `Taxi`.
    Taxi,
    /// v3 `Hatchback`.
    Hatchback,
    /// v3 `Police`.
    Police,
    /// v3 `Bus`.
    Bus,
    /// v3 `Van`.
    Van,
    /// v3 `MiniVan`.
    MiniVan,
    /// v3 `Truck-Box-Large`.
    TruckBoxLarge,
    /// v3 `Truck-Box-Med`.
    TruckBoxMed,
    /// v3 `Truck-Util`.
    TruckUtil,
    /// v3 `Truck-Pickup`.
    TruckPickup,
    /// v3 `Truck-Flatbed`.
    TruckFlatbed,
}

/// The v3 fine-grained types: spelling in the XML, the type, and its benchmark class.
pub const V3_TYPE_TABLE: [(&str, VehicleType, VehicleClass); 13] = [
    ("Sedan", VehicleType::Sedan, VehicleClass::Car),
    ("Suv", VehicleType::Suv, VehicleClass::Car),
    ("Taxi", VehicleType::Taxi, VehicleClass::Car),
    ("Hatchback", VehicleType::Hatchback, VehicleClass::Car),
    ("Police", VehicleType::Police, VehicleClass::Car),
    ("Bus", VehicleType::Bus, VehicleClass::Bus),
    ("Van", VehicleType::Van, VehicleClass::Van),
    ("MiniVan", VehicleType::MiniVan, VehicleClass::Van),
    (
        "Truck-Box-Large",
        VehicleType::TruckBoxLarge,
        VehicleClass::Others,
    ),
    (
        "Truck-Box-Med",
        VehicleType::TruckBoxMed,
        VehicleClass::Others,
    ),
    ("Truck-Util", VehicleType::TruckUtil, VehicleClass::Others),
    (
        "Truck-Pickup",
        VehicleType::TruckPickup,
        VehicleClass::Others,
    ),
    (
        "Truck-Flatbed",
        VehicleType::TruckFlatbed,
        VehicleClass::Others,
    ),
];

impl VehicleType {
    /// Parses a `vehicle_type` value: the v1 lowercase classes or the exact v3 spellings.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "car" => Some(Self::Coarse(VehicleClass::Car)),
            "bus" => Some(Self::Coarse(VehicleClass::Bus)),
            "van" => Some(Self::Coarse(VehicleClass::Van)),
            "others" => Some(Self::Coarse(VehicleClass::Others)),
            _ => V3_TYPE_TABLE
                .iter()
                .find(|(name, _, _)| *name == value)
                .map(|(_, vehicle_type, _)| *vehicle_type),
        }
    }

    /// The spelling used in the XML files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Coarse(class) => class.name(),
            fine => V3_TYPE_TABLE
                .iter()
                .find(|(_, vehicle_type, _)| *vehicle_type == fine)
                .map(|(name, _, _)| *name)
                .expect("every fine-grained VehicleType has a row in V3_TYPE_TABLE"),
        }
    }

    /// The benchmark class of this type ([`V3_TYPE_TABLE`] for the v3 types).
    pub fn class(self) -> VehicleClass {
        match self {
            Self::Coarse(class) => class,
            fine => V3_TYPE_TABLE
                .iter()
                .find(|(_, vehicle_type, _)| *vehicle_type == fine)
                .map(|(_, _, class)| *class)
                .expect("every fine-grained VehicleType has a row in V3_TYPE_TABLE"),
        }
    }

    /// Whether this is a v3 fine-grained type (as opposed to a v1 class label).
    pub fn is_fine_grained(self) -> bool {
        !matches!(self, Self::Coarse(_))
    }
}

impl std::fmt::Display for VehicleType {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl std::fmt::Display for VehicleClass {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_map_every_v3_type_to_the_documented_class() {
        let expected = [
            ("Sedan", "car"),
            ("Suv", "car"),
            ("Taxi", "car"),
            ("Hatchback", "car"),
            ("Police", "car"),
            ("Bus", "bus"),
            ("Van", "van"),
            ("MiniVan", "van"),
            ("Truck-Box-Large", "others"),
            ("Truck-Box-Med", "others"),
            ("Truck-Util", "others"),
            ("Truck-Pickup", "others"),
            ("Truck-Flatbed", "others"),
        ];
        for (name, class) in expected {
            let vehicle_type = VehicleType::parse(name).expect(name);
            assert!(vehicle_type.is_fine_grained());
            assert_eq!(vehicle_type.class().name(), class, "{name}");
            assert_eq!(vehicle_type.as_str(), name);
        }
        assert_eq!(V3_TYPE_TABLE.len(), expected.len());
    }

    #[test]
    fn should_parse_v1_labels_as_their_own_class() {
        for class in VehicleClass::ALL {
            let vehicle_type = VehicleType::parse(class.name()).unwrap();
            assert_eq!(vehicle_type, VehicleType::Coarse(class));
            assert_eq!(vehicle_type.class(), class);
            assert_eq!(vehicle_type.as_str(), class.name());
        }
    }

    #[test]
    fn should_reject_unknown_or_miscased_types() {
        assert_eq!(VehicleType::parse("sedan"), None);
        assert_eq!(VehicleType::parse("Car"), None);
        assert_eq!(VehicleType::parse(""), None);
        assert_eq!(VehicleType::parse("Truck"), None);
    }

    #[test]
    fn should_number_classes_from_zero_and_coco_ids_from_one() {
        for (index, class) in VehicleClass::ALL.into_iter().enumerate() {
            assert_eq!(class.index(), index);
            assert_eq!(VehicleClass::from_index(index), Some(class));
            assert_eq!(class.coco_category_id() as usize, index + 1);
        }
        assert_eq!(VehicleClass::from_index(4), None);
    }
}
